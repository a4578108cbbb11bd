"""HTX (Huobi) 2021 recording (gzip frames, ``depth.step0`` full snapshots): replay
through the connector and the engine, compare with a longhand rebuild.

Two of the ten recorded books (xvgeth, fil3susdt) carry levels that no int64 fixed-point
scale can hold exactly: sizes with up to 13 decimals (order amounts finer than the
instrument's amount-precision) next to sizes of 7-9 integer digits in the same book.
Those messages must be dropped, counted and leave the book stale, never rounded; the
other eight books must be live and equal to the reference."""

import gzip
import json
from decimal import Decimal

import pytest

from connectors.htx import HTX
from connectors.recorded import load_session
from connectors.replay import replay_session
from tests.connectors.reference import RefBook, as_decimal_levels, frames_and_rest, need_recordings

INT64_MAX = 2**63 - 1
UNREPRESENTABLE = {"xvgeth", "fil3susdt"}


def rebuild_htx_depth(depth: int) -> tuple[dict[str, RefBook], dict[str, list[dict]]]:
    """Every depth.step0 message replaces the book (newer versions only)."""
    books: dict[str, RefBook] = {}
    ticks: dict[str, list[dict]] = {}
    version: dict[str, int] = {}
    for _, kind, payload in frames_and_rest("HUOBI"):
        if kind != "ws":
            continue
        msg = json.loads(gzip.decompress(payload), parse_float=Decimal)
        ch = msg.get("ch", "")
        if ".depth." not in ch:
            continue
        sym = ch.split(".")[1]
        tick = msg["tick"]
        if tick["version"] <= version.get(sym, -1):
            continue
        version[sym] = tick["version"]
        ticks.setdefault(sym, []).append(tick)
        book = books[sym] = RefBook(depth)
        for p, q in tick["bids"]:
            book.set("bid", p, q)
        for p, q in tick["asks"]:
            book.set("ask", p, q)
    return books, ticks


def digits_needed(tick: dict) -> int:
    """Integer digits of the largest size plus decimals of the finest one."""
    sizes = [Decimal(q) for side in ("bids", "asks") for _, q in tick[side]]
    whole = max(len(str(int(q))) for q in sizes)
    frac = max(max(0, -q.normalize().as_tuple().exponent) for q in sizes)
    return whole + frac


def fits(tick: dict, decimals: int) -> bool:
    for side in ("bids", "asks"):
        for _, q in tick[side]:
            v = Decimal(q).scaleb(decimals)
            if v != v.to_integral_value() or v > INT64_MAX:
                return False
    return True


@pytest.fixture(scope="module")
def replay():
    return replay_session(need_recordings(), "HUOBI")


def test_recorded_htx_books_match_reference(replay):
    res = replay
    assert len(res.symbols) == 10 and res.unrequested_snapshots == 0
    assert res.gaps == 0 and res.checksums_failed == 0
    ref, _ = rebuild_htx_depth(res.store.depth)
    assert set(ref) == set(res.symbols)
    got = res.books_dict()
    for sym, book in ref.items():
        if sym in UNREPRESENTABLE:
            continue
        assert res.statuses[sym] == "live", sym
        assert as_decimal_levels(got[sym]) == book.levels(), sym
        assert len(book.levels()["bids"]) > 20  # real depth, not a trivial book
        assert res.stats.sym(sym).malformed == 0 and res.stats.sym(sym).resyncs == 0
    assert sum(s == "live" for s in res.statuses.values()) == 8


def test_unrepresentable_books_are_dropped_and_counted_not_rounded(replay):
    res = replay
    _, ticks = rebuild_htx_depth(res.store.depth)
    session = load_session(need_recordings(), "HUOBI")
    insts = HTX.parse_instruments(session.instrument_responses[0].body)
    expected_bad = 0
    for sym in res.symbols:
        bad = [t for t in ticks[sym] if not fits(t, insts[sym].size_decimals)]
        st = res.stats.sym(sym)
        assert st.malformed == len(bad) and st.resyncs == len(bad), sym
        expected_bad += len(bad)
        if sym in UNREPRESENTABLE:
            # no single int64 scale holds the last message: not a choice of ours
            assert digits_needed(ticks[sym][-1]) > 18, sym
            assert res.statuses[sym] == "stale" and st.messages == 0, sym
    assert res.malformed == expected_bad == 62
    assert set(res.stats.reasons) == {"more decimals than the instrument scale",
                                      "number outside int64 at the instrument scale"}


def test_recorded_exponent_numbers_are_exact(replay):
    """'9.121E-7' and '3.358149508E7' reach the book as exact decimals."""
    book = replay.books_dict()["trioeth"]
    ref, _ = rebuild_htx_depth(replay.store.depth)
    levels = as_decimal_levels(book)
    assert levels == ref["trioeth"].levels()
    assert all(p < Decimal("0.001") for p, _ in levels["bids"])
    assert any(q == q.to_integral_value() and q >= 10**7 for _, q in levels["bids"])
