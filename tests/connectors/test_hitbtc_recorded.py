"""HitBTC recorded session (API v2, 2021): replay through the v2 dialect and the engine;
every recorded book live, no gaps / resyncs / malformed, equal to a longhand reference
rebuild (json + Decimal + dicts).  Also the instrument list, the scales against every
number sent, and the v3 protocol frame by frame."""

import json
from decimal import Decimal

import orjson
import pytest

import connectors
from connectors.hitbtc import HitBTC, HitBTCV2
from connectors.recorded import load_session
from connectors.replay import replay_session, session_instruments, session_symbols
from engine.fixedpoint import decimals_for
from tests.connectors.harness import ProtocolHarness
from tests.connectors.reference import RefBook, as_decimal_levels, frames_and_rest, need_recordings

BOOKS = {"DNTBTC", "CRDTETH", "GRTBTC", "ORNBTC", "POLYBTC", "GVTETH", "INSURBTC",
         "VETBTC", "MTXUSD", "EURSUSD"}


@pytest.fixture
def v2(monkeypatch):
    monkeypatch.setitem(connectors.RECORDINGS, "HITBTC", "connectors.hitbtc:HitBTCV2")


def book_messages():
    for _, kind, payload in frames_and_rest("HITBTC"):
        if kind == "ws":
            msg = json.loads(payload)
            if msg.get("method") in ("snapshotOrderbook", "updateOrderbook"):
                yield msg["method"], msg["params"]


def rebuild_hitbtc(depth: int) -> dict[str, RefBook]:
    """The documented merge, longhand: a snapshot replaces the book, an update's
    sequence is the previous one + 1 and sets absolute sizes, 0 deletes."""
    books: dict[str, RefBook] = {}
    last: dict[str, int] = {}
    for method, p in book_messages():
        sym = p["symbol"]
        if method == "snapshotOrderbook":
            books[sym] = RefBook(depth)
        else:
            assert p["sequence"] == last[sym] + 1, "gap in the recording"
        last[sym] = p["sequence"]
        for lv in p["bid"]:
            books[sym].set("bid", lv["price"], lv["size"])
        for lv in p["ask"]:
            books[sym].set("ask", lv["price"], lv["size"])
    return books


def test_recorded_hitbtc_matches_reference(v2):
    res = replay_session(need_recordings(), "HITBTC")
    assert res.ok, res.summary()
    assert res.gaps == 0 and res.resyncs == 0 and res.malformed == 0
    assert set(res.symbols) == BOOKS and res.summary()["books_live"] == 10
    msgs = list(book_messages())
    assert sum(m == "snapshotOrderbook" for m, _ in msgs) == 20   # two per book
    assert res.level_updates == sum(len(p["bid"]) + len(p["ask"]) for _, p in msgs)
    ref = rebuild_hitbtc(res.depth)
    got = res.books_dict()
    assert set(ref) == BOOKS
    for sym, book in ref.items():
        assert as_decimal_levels(got[sym]) == book.levels(), sym
        assert res.stats.symbols[sym].snapshots == 2
    levels = ref["VETBTC"].levels()
    assert len(levels["bids"]) > 300 and len(levels["asks"]) > 600


def test_recorded_instruments_and_symbols():
    session = load_session(need_recordings(), "HITBTC")
    instruments = session_instruments(HitBTCV2, session)
    assert len(instruments) == 1242
    natives = session_symbols(HitBTCV2, session, instruments)
    assert set(natives) == BOOKS
    mtx = instruments["MTXUSD"]                      # v2's USD is Tether
    assert (mtx.unified, mtx.tick, mtx.lot) == ("MTX-USDT", "0.0000001", "1")
    assert (mtx.price_decimals, mtx.size_decimals) == (9, 2)


def test_scales_cover_every_number_sent():
    instruments = session_instruments(HitBTCV2, load_session(need_recordings(), "HITBTC"))
    seen = 0
    for _, p in book_messages():
        inst = instruments[p["symbol"]]
        for lv in p["bid"] + p["ask"]:
            assert decimals_for(lv["price"]) <= inst.price_decimals
            assert decimals_for(lv["size"]) <= inst.size_decimals
            assert Decimal(lv["price"]) % Decimal(inst.tick) == 0, (p["symbol"], lv)
            seen += 1
    assert seen > 5000


def test_v3_instrument_list():
    body = orjson.dumps({"BTCUSDT": {"type": "spot", "base_currency": "BTC",
                                     "quote_currency": "USDT", "quantity_increment": "0.00001",
                                     "tick_size": "0.01"},
                         "BTCUSDT_PERP": {"type": "futures", "base_currency": "BTC",
                                          "quote_currency": "USDT",
                                          "quantity_increment": "1", "tick_size": "0.1"}})
    out = HitBTC.parse_instruments(body)
    assert list(out) == ["BTCUSDT"]
    assert (out["BTCUSDT"].unified, out["BTCUSDT"].price_decimals,
            out["BTCUSDT"].size_decimals) == ("BTC-USDT", 4, 7)


# -- the v3 protocol alone, frame by frame ------------------------------------------------
class Harness(ProtocolHarness):
    def __init__(self, cls=HitBTC, symbols=("BTCUSDT",)) -> None:
        super().__init__(cls, symbols, 4, 8)


def ob(seq, b=(), a=(), snapshot=False, symbol="BTCUSDT"):
    return {"ch": "orderbook/full", "snapshot" if snapshot else "update":
            {symbol: {"t": 1626866578796, "s": seq, "b": list(b), "a": list(a)}}}


def test_v3_sync_gap_and_resubscribe():
    h = Harness()
    assert json.loads(h.proto.subscribe_messages(["BTCUSDT"])[0]) == {
        "method": "subscribe", "ch": "orderbook/full", "params": {"symbols": ["BTCUSDT"]},
        "id": 1}
    h.frame({"result": {"ch": "orderbook/full", "subscriptions": ["BTCUSDT"]}, "id": 1})
    h.frame(ob(9, b=[["99", "1"]]))                       # before the snapshot: dropped
    h.frame(ob(10, b=[["100", "1"]], a=[["101", "2"]], snapshot=True))
    h.frame(ob(11, b=[["100.5", "3"]], a=[["101", "0"], ["102", "1"]]))
    assert h.book()["status"] == "live"
    assert h.book()["bids"] == [["100.5", "3"], ["100", "1"]]
    assert h.book()["asks"] == [["102", "1"]]
    h.proto.outbox.clear()
    h.frame(ob(13, b=[["100", "0"]]))                      # 12 lost
    assert h.book()["status"] == "stale" and h.stats.gaps == 1 and h.stats.resyncs == 1
    sent = [json.loads(m) for m in h.proto.outbox]
    assert [m["method"] for m in sent] == ["unsubscribe", "subscribe"]
    h.frame(ob(14, b=[["100", "0"]]))                      # old subscription's tail
    assert h.book()["status"] == "stale"
    h.frame(ob(20, b=[["90", "1"]], a=[["95", "1"]], snapshot=True))
    h.frame(ob(21, a=[["96", "4"]]))
    assert h.book()["status"] == "live" and h.book()["bids"] == [["90", "1"]]
    assert h.book()["asks"] == [["95", "1"], ["96", "4"]] and h.stats.snapshots == 2


def test_v3_bad_input_is_counted_never_raised():
    h = Harness()
    h.frame("not json")
    h.frame([1, 2])
    h.frame({"foo": 1})
    h.frame({"error": {"code": 2001, "message": "Method not found"}, "id": 3})
    h.frame({"ch": "orderbook/full"})
    assert h.proto.stats.malformed_frames == 5 and h.stats.malformed == 0
    seq = 100
    for bad in ({"s": "x", "b": []}, {"b": []}, {"s": None},
                {"s": 0, "b": [["1e", "1"]]}, {"s": 0, "b": [[100, "1"]]},
                {"s": 0, "b": [["100"]]}, {"s": 0, "b": "x"},
                {"s": 0, "b": [["100.000001", "1"]]}, {"s": 0, "t": "x"}):
        seq += 10
        h.frame(ob(seq, b=[["100", "1"]], a=[["101", "2"]], snapshot=True))
        assert h.book()["status"] == "live"
        body = dict(bad)
        if body.get("s") == 0:
            body["s"] = seq + 1
        h.frame({"ch": "orderbook/full", "update": {"BTCUSDT": body}})
        assert h.book()["status"] == "stale", bad
    assert h.stats.malformed == 9 and h.stats.resyncs == 9 and h.stats.gaps == 0
    h.frame(ob(1, b=[["1", "1"]], symbol="NOPEUSDT"))
    assert h.proto.stats.unknown_symbol_frames == 1
    h.frame({"ch": "ticker/1s", "data": {}})
    assert h.proto.stats.ignored_frames >= 1


def test_deep_snapshot_is_cut_to_the_best_levels_per_side():
    h = Harness()
    h.proto.depth = 3
    bids = [[p, "1"] for p in ("97", "100", "99.5", "98", "99")]
    asks = [[p, "2"] for p in ("104", "101", "103", "102.25", "105")]
    h.frame(ob(5, b=bids, a=asks, snapshot=True))
    assert [p for p, _ in h.book()["bids"]] == ["100", "99.5", "99"]
    assert [p for p, _ in h.book()["asks"]] == ["101", "102.25", "103"]


def test_v2_dialect_messages():
    h = Harness(HitBTCV2)
    assert [json.loads(m) for m in h.proto.book_channel_messages("unsubscribe",
                                                                 ["BTCUSDT"])] == [
        {"method": "unsubscribeOrderbook", "params": {"symbol": "BTCUSDT"}, "id": 1}]
    h.frame({"jsonrpc": "2.0", "method": "snapshotOrderbook", "params": {
        "ask": [{"price": "101", "size": "2"}], "bid": [{"price": "100", "size": "1"}],
        "symbol": "BTCUSDT", "sequence": 7, "timestamp": "2021-07-15T03:06:43.095Z"}})
    h.frame({"jsonrpc": "2.0", "method": "updateOrderbook", "params": {
        "ask": [], "bid": [{"price": "100", "size": "0.00"}], "symbol": "BTCUSDT",
        "sequence": 8, "timestamp": "2021-07-15T03:06:43.195Z"}})
    assert h.book()["status"] == "live" and h.book()["bids"] == []
    assert HitBTCV2.ts_ns("2021-07-15T03:06:43.095Z") == 1626318403095000000
