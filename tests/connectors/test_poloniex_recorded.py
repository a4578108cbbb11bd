"""Poloniex recorded session (2022-08, the v3 ``book_lv2`` dialect of
wss://ws.poloniex.com/ws/public, not the old api2 numeric-channel one): replay through
the connector and the engine; every recorded book live, no gap, no resync, and every
book equal to a longhand reference rebuild (json + Decimal) that checks the
lastId/id chain itself."""

import json
from decimal import Decimal

from connectors.poloniex import Poloniex
from connectors.recorded import load_session
from connectors.replay import replay_session, session_instruments, session_symbols
from engine.fixedpoint import decimals_for
from tests.connectors.reference import RefBook, as_decimal_levels, frames_and_rest, need_recordings

BOOKS = ["BCH_USDT", "EFI_USDT", "USDJ_USDT", "DYP_USDT", "SOL_USDT", "MDT_BTC", "GRT_USDT",
         "GF_USDT", "BCH_BTC", "ZEC_USDT", "BTC_USDT"]


def book_entries():
    """(action, entry) of every ``book_lv2`` data entry in the recording, in order."""
    for _, kind, payload in frames_and_rest("POLONIEX"):
        if kind != "ws":
            continue
        msg = json.loads(payload)
        if msg.get("channel") == "book_lv2" and "data" in msg:
            for entry in msg["data"]:
                yield msg["action"], entry


def rebuild_poloniex(depth: int) -> tuple[dict[str, RefBook], int]:
    """The documented procedure, longhand: a snapshot replaces the book; an update
    applies only if its lastId is the previous message's id.  Returns the books and
    the number of updates chained."""
    books: dict[str, RefBook] = {}
    last: dict[str, int] = {}
    chained = 0
    for action, entry in book_entries():
        sym = entry["symbol"]
        if action == "snapshot":
            books[sym] = RefBook(depth)
        else:
            assert entry["lastId"] == last[sym], "gap in the recording"
            chained += 1
        last[sym] = entry["id"]
        for p, q in entry["bids"]:
            books[sym].set("bid", p, q)
        for p, q in entry["asks"]:
            books[sym].set("ask", p, q)
    return books, chained


def test_recorded_poloniex_matches_reference():
    res = replay_session(need_recordings(), "POLONIEX")
    assert res.ok, res.summary()
    assert res.symbols == BOOKS and res.books == 11 and res.depth == 20
    assert all(s == "live" for s in res.statuses.values())
    assert res.gaps == 0 and res.resyncs == 0 and res.malformed == 0
    assert res.unrequested_snapshots == 0
    assert res.stats.malformed_frames == 0 and res.stats.unknown_symbol_frames == 0
    entries = list(book_entries())
    assert len(entries) == 294
    ref, chained = rebuild_poloniex(res.depth)
    assert chained == 283
    totals = res.stats.totals()
    assert totals["messages"] == 294 and totals["snapshots"] == 11
    assert res.level_updates == sum(len(e["bids"]) + len(e["asks"]) for _, e in entries)
    got = res.books_dict()
    assert set(ref) == set(BOOKS)
    for sym, book in ref.items():
        assert as_decimal_levels(got[sym]) == book.levels(), sym
        assert got[sym]["seq"] == max(e["id"] for _, e in entries if e["symbol"] == sym)
    assert len(ref["BTC_USDT"].levels()["bids"]) == 20     # real depth, not a trivial book
    assert res.stats.symbols["BTC_USDT"].messages == 160
    # trades frames and the two subscribe answers are counted as ignored, not malformed
    assert res.stats.ignored_frames == 8


def test_recorded_instruments_and_scales():
    session = load_session(need_recordings(), "POLONIEX")
    instruments = session_instruments(Poloniex, session)
    assert len(instruments) == 524
    assert session_symbols(Poloniex, session, instruments) == BOOKS
    btc = instruments["BTC_USDT"]
    assert (btc.unified, btc.kind, btc.tick, btc.lot) == ("BTC-USDT", "spot", "0.01",
                                                           "0.000001")
    assert (btc.price_decimals, btc.size_decimals) == (4, 8)     # scales + 2 headroom
    assert instruments["MDT_BTC"].lot == "1"
    seen = 0
    for _, entry in book_entries():       # every number fits the venue's own scale
        ins = instruments[entry["symbol"]]
        for p, q in entry["bids"] + entry["asks"]:
            assert decimals_for(p) <= ins.price_decimals - 2
            assert decimals_for(q) <= ins.size_decimals - 2
            assert Decimal(p) > 0 and Decimal(q) >= 0
            seen += 1
    assert seen > 900
