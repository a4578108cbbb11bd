"""Bitstamp recorded session: replay through the connector and the engine; every book
live, no gaps, and equal to a longhand reference rebuild (json, Decimal, dicts)."""

import json

from connectors.bitstamp import Bitstamp
from connectors.replay import replay_session
from tests.connectors.reference import (
    RefBook,
    as_decimal_levels,
    frames_and_rest,
    need_recordings,
)


def rebuild_bitstamp(depth: int) -> dict[str, RefBook]:
    """Bitstamp's procedure written out: snapshot, then only diffs with a microtimestamp
    newer than the snapshot's, which must never go back."""
    books: dict[str, RefBook] = {}
    snap_mt: dict[str, int] = {}
    last: dict[str, int] = {}
    waiting: dict[str, list[dict]] = {}

    def apply(sym: str, data: dict) -> None:
        mt = int(data["microtimestamp"])
        if mt <= snap_mt[sym]:
            return
        assert mt >= last[sym], "microtimestamps went back in the recording"
        for price, size in data["bids"]:
            books[sym].set("bid", price, size)
        for price, size in data["asks"]:
            books[sym].set("ask", price, size)
        last[sym] = mt

    for _, kind, payload in frames_and_rest("BITSTAMP"):
        if kind == "http":
            url, body = payload
            sym = url.rstrip("/").rsplit("/", 1)[1]
            snap = json.loads(body)
            books[sym] = RefBook(depth)
            for price, size in snap["bids"]:
                books[sym].set("bid", price, size)
            for price, size in snap["asks"]:
                books[sym].set("ask", price, size)
            snap_mt[sym] = last[sym] = int(snap["microtimestamp"])
            for data in waiting.pop(sym, []):
                apply(sym, data)
            continue
        msg = json.loads(payload)
        if msg.get("event") != "data" or not msg["channel"].startswith("diff_order_book_"):
            continue
        sym = msg["channel"][len("diff_order_book_"):]
        if sym in books:
            apply(sym, msg["data"])
        else:
            waiting.setdefault(sym, []).append(msg["data"])
    return books


def test_recorded_bitstamp_matches_reference():
    res = replay_session(need_recordings(), "BITSTAMP")
    assert res.ok, res.summary()
    assert res.gaps == 0 and res.resyncs == 0 and res.malformed == 0
    assert res.unrequested_snapshots == 0
    assert len(res.symbols) == 10 and res.level_updates > 10_000
    ref = rebuild_bitstamp(res.store.depth)
    assert set(ref) == set(res.symbols)
    got = res.books_dict()
    for sym, book in ref.items():
        assert as_decimal_levels(got[sym]) == book.levels(), sym
    # real depth, not trivial books: ETH-USD's snapshot alone holds ~4000 levels
    assert len(ref["ethusd"].levels()["bids"]) > 1000
    # 10 snapshots and 717 diffs recorded; 102 diffs are stamped at or before their
    # snapshot's microtimestamp (two exactly at it, already contained in it): skipped
    assert sum(s.messages for s in res.stats.symbols.values()) == 10 + 717 - 102


def test_scales_cover_the_recorded_numbers():
    """Every number in the session fits the pair's published decimals exactly."""
    from connectors.recorded import load_session
    from engine.fixedpoint import to_fixed

    session = load_session(need_recordings(), "BITSTAMP")
    inst = Bitstamp.parse_instruments(session.instrument_responses[0].body)
    assert inst["ethusd"].price_decimals == 2 and inst["ethusd"].size_decimals == 8
    assert inst["ethusd"].unified == "ETH-USD"
    n = 0
    for _, kind, payload in frames_and_rest("BITSTAMP"):
        if kind == "http":
            sym, data = payload[0].rstrip("/").rsplit("/", 1)[1], json.loads(payload[1])
        else:
            msg = json.loads(payload)
            if msg.get("event") != "data" or "diff_order_book_" not in msg["channel"]:
                continue
            sym, data = msg["channel"][len("diff_order_book_"):], msg["data"]
        for price, size in data["bids"] + data["asks"]:
            to_fixed(price, inst[sym].price_decimals)
            to_fixed(size, inst[sym].size_decimals)
            n += 1
    assert n > 10_000
