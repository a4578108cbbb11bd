"""Gemini recorded session (market data v2, ``l2``, 2021): replay through the connector
and the engine; every recorded book live, no gaps / resyncs / malformed, and equal to a
longhand reference rebuild (json + Decimal + dicts).  Also: the instrument list, the
scales against every number sent, and the protocol's own rules frame by frame."""

import json
from decimal import Decimal

import orjson

from connectors.gemini import Gemini
from connectors.recorded import load_session
from connectors.replay import replay_session, session_instruments, session_symbols
from engine.fixedpoint import decimals_for
from tests.connectors.harness import ProtocolHarness
from tests.connectors.reference import RefBook, as_decimal_levels, frames_and_rest, need_recordings

BOOKS = {"GRTUSD", "ETHEUR", "LTCETH", "ALCXUSD", "BATBTC"}   # the others were removed


def l2_messages():
    for _, kind, payload in frames_and_rest("GEMINI"):
        if kind == "ws":
            msg = json.loads(payload)
            if msg["type"] == "l2_updates":
                yield msg


def rebuild_gemini(depth: int) -> dict[str, RefBook]:
    """The documented merge, longhand: the first message of a symbol is its whole book,
    every change sets the level's absolute size, 0 deletes."""
    books: dict[str, RefBook] = {}
    for msg in l2_messages():
        sym = msg["symbol"]
        if sym not in books:
            assert "trades" in msg, "first message of a book is the snapshot"
            books[sym] = RefBook(depth)
        else:
            assert "trades" not in msg
        for side, price, qty in msg["changes"]:
            books[sym].set({"buy": "bid", "sell": "ask"}[side], price, qty)
    return books


def test_recorded_gemini_matches_reference():
    res = replay_session(need_recordings(), "GEMINI")
    assert res.ok, res.summary()
    assert res.gaps == 0 and res.resyncs == 0 and res.malformed == 0
    assert set(res.symbols) == BOOKS and res.summary()["books_live"] == 5
    assert res.level_updates == sum(len(m["changes"]) for m in l2_messages()) == 1736
    ref = rebuild_gemini(res.store.depth)
    got = res.books_dict()
    assert set(ref) == BOOKS
    for sym, book in ref.items():
        assert as_decimal_levels(got[sym]) == book.levels(), sym
        levels = book.levels()                          # real depth, not a trivial book
        assert len(levels["bids"]) >= 15 and len(levels["bids"]) + len(levels["asks"]) > 60
        assert res.stats.symbols[sym].snapshots == 1
    assert res.stats.ignored_frames == 8                # 7 heartbeats + 1 trade


def test_recorded_instruments_and_symbols():
    session = load_session(need_recordings(), "GEMINI")
    instruments = session_instruments(Gemini, session)
    assert len(instruments) == 71                       # one per details response
    natives = session_symbols(Gemini, session, instruments)
    assert len(natives) == 10 and set(Gemini.recorded_symbols(session, natives)) == BOOKS
    bat = instruments["BATBTC"]
    # quote_increment (1E-8) is the price step, tick_size (0.000001) the size step
    assert (bat.unified, bat.tick, bat.lot) == ("BAT-BTC", "1E-8", "0.000001")
    assert (bat.price_decimals, bat.size_decimals) == (10, 8)
    assert instruments["GUSDUSD"].size_decimals == 4


def test_scales_cover_every_number_sent():
    instruments = session_instruments(Gemini, load_session(need_recordings(), "GEMINI"))
    seen = 0
    for msg in l2_messages():
        inst = instruments[msg["symbol"]]
        for _, price, qty in msg["changes"]:
            assert decimals_for(price) <= decimals_for(inst.tick) <= inst.price_decimals
            assert decimals_for(qty) <= decimals_for(inst.lot) <= inst.size_decimals
            assert Decimal(price) % Decimal(inst.tick) == 0, (msg["symbol"], price)
            seen += 1
    assert seen == 1736


def test_instrument_paging_walks_the_symbol_list():
    base = "http://127.0.0.1:1"
    url = Gemini.instrument_urls()[0].replace(Gemini.rest_url, base)
    assert url == base + "/v1/symbols"
    url = Gemini.next_instrument_url(url, b'["btcusd","ethusd"]')
    assert url == base + "/v1/symbols/details/btcusd"
    url = Gemini.next_instrument_url(url, b"{}")
    assert url == base + "/v1/symbols/details/ethusd"
    assert Gemini.next_instrument_url(url, b"{}") is None
    assert Gemini.parse_instruments(b'["btcusd"]') == {}


# -- the protocol alone, frame by frame ---------------------------------------------------
class Harness(ProtocolHarness):
    def __init__(self, symbols=("BTCUSD",)) -> None:
        super().__init__(Gemini, symbols, 4, 8)


def l2(changes, snapshot=False, symbol="BTCUSD"):
    msg = {"type": "l2_updates", "symbol": symbol, "changes": changes}
    if snapshot:
        msg.update(trades=[], auction_events=[])
    return msg


def test_updates_before_snapshot_are_dropped_then_snapshot_clears():
    h = Harness()
    h.frame(l2([["buy", "99", "1"]]))                    # no snapshot yet
    assert h.book()["bids"] == [] and h.book()["status"] != "live"
    h.frame(l2([["buy", "100", "1"], ["sell", "101", "2"]], snapshot=True))
    h.frame(l2([["buy", "100.5", "3"], ["sell", "101", "0"], ["sell", "102", "1"]]))
    assert h.book()["status"] == "live"
    assert h.book()["bids"] == [["100.5", "3"], ["100", "1"]]
    assert h.book()["asks"] == [["102", "1"]]
    h.frame(l2([["buy", "90", "1"], ["sell", "95", "1"]], snapshot=True))   # a new one
    assert h.book()["bids"] == [["90", "1"]] and h.book()["asks"] == [["95", "1"]]
    assert h.stats.snapshots == 2 and h.proto.stats.ignored_frames == 1


def test_crossed_book_resubscribes_and_recovers():
    h = Harness()
    h.frame(l2([["buy", "100", "1"], ["sell", "101", "2"]], snapshot=True))
    h.proto.outbox.clear()
    h.frame(l2([["buy", "101", "1"]]))                   # a lost delete of the 101 ask
    assert h.book()["status"] == "stale"
    assert h.stats.crossed == 1 and h.stats.resyncs == 1 and h.stats.gaps == 0
    sent = [orjson.loads(m) for m in h.proto.outbox]
    assert [m["type"] for m in sent] == ["unsubscribe", "subscribe"]
    assert sent[1]["subscriptions"] == [{"name": "l2", "symbols": ["BTCUSD"]}]
    h.frame(l2([["buy", "100", "0"]]))                   # old subscription's tail: dropped
    h.frame(l2([["buy", "101", "1"], ["sell", "102", "2"]], snapshot=True))
    assert h.book()["status"] == "live" and h.book()["asks"] == [["102", "2"]]


def test_bad_input_is_counted_never_raised():
    h = Harness()
    h.frame(l2([["buy", "100", "1"], ["sell", "101", "2"]], snapshot=True))
    h.frame("not json")
    h.frame([1, 2])
    h.frame({"symbol": "BTCUSD"})
    assert h.proto.stats.malformed_frames == 3 and h.stats.malformed == 0
    for bad in ([["hold", "100", "1"]], [["buy", "1e", "1"]], [["buy", 100, "1"]],
                [["buy", "100"]], "x", [["buy", "100.000001", "1"]]):
        h.frame(l2([["buy", "100", "1"], ["sell", "101", "2"]], snapshot=True))
        assert h.book()["status"] == "live"
        h.frame(l2(bad))
        assert h.book()["status"] == "stale", bad
    assert h.stats.malformed == 6 and h.stats.resyncs == 6
    h.frame(l2([["buy", "1", "1"]], symbol="NOPEUSD"))
    assert h.proto.stats.unknown_symbol_frames == 1
    h.frame({"type": "heartbeat", "timestamp": 1})
    assert h.proto.heartbeats == 1


def test_deep_snapshot_is_cut_to_the_best_levels_per_side():
    h = Harness()
    h.proto.depth = 3
    bids = [["buy", p, "1"] for p in ("97", "100", "99.5", "98", "99")]     # any order
    asks = [["sell", p, "2"] for p in ("104", "101", "103", "102.25", "105")]
    h.frame(l2(bids + asks, snapshot=True))
    assert [p for p, _ in h.book()["bids"]] == ["100", "99.5", "99"]
    assert [p for p, _ in h.book()["asks"]] == ["101", "102.25", "103"]
    assert h.book()["status"] == "live" and h.stats.levels == 6
