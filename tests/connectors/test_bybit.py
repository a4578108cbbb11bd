"""Bybit v5 order-book protocol on fixtures: the documented example snapshot and delta
(tests/connectors/fixtures/bybit_*.json, written in the documented shape, with the
levels the docs elide as "..." left out) give an exact book; deltas before a snapshot
are not applied; gaps, restarts (u=1), bad frames and rejected subscriptions are
detected and counted; instruments parse to the right names and scales."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.base import ConfigError
from connectors.bybit import Bybit, BybitInverse, BybitSpot
from tests.connectors.harness import ExchangeHarness

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> dict:
    return orjson.loads((FIXTURES / f"bybit_{name}.json").read_bytes())


LINEAR = Bybit.parse_instruments((FIXTURES / "bybit_instruments_linear.json").read_bytes())


class Harness(ExchangeHarness):
    """One protocol writing into a real ring and store, drained after every frame."""

    def __init__(self, symbols=("BTCUSDT",), depth: int | None = 50, cls=Bybit,
                 instruments=None) -> None:
        super().__init__(cls, symbols, depth=1000, instruments=instruments or LINEAR,
                         options={"depth": depth}, recv_ns=123)


def delta(u: int, bids=(), asks=(), symbol: str = "BTCUSDT", depth: int = 50) -> dict:
    return {"topic": f"orderbook.{depth}.{symbol}", "type": "delta", "ts": 1671179923100,
            "data": {"s": symbol, "b": [list(x) for x in bids], "a": [list(x) for x in asks],
                     "u": u, "seq": 22520573300 + u}, "cts": 1671179923090}


def snapshot(u: int, bids, asks, symbol: str = "BTCUSDT", depth: int = 50) -> dict:
    msg = delta(u, bids, asks, symbol, depth)
    msg["type"] = "snapshot"
    return msg


SNAP_BIDS = [["17440", "40.833"], ["17439.5", "0.513"], ["17416", "6.156"],
             ["17415.5", "32.268"]]
SNAP_ASKS = [["17440.5", "78.815"], ["17441", "8.858"], ["17464.5", "4.901"],
             ["17465", "5.744"]]


def synced() -> Harness:
    h = Harness()
    h.feed(fixture("orderbook_snapshot"))
    return h


# -- the documented example ---------------------------------------------------------------
def test_documented_snapshot_then_delta_gives_the_exact_book():
    h = Harness()
    assert h.book()["status"] == "syncing"
    h.feed(fixture("orderbook_snapshot"))
    book = h.book()
    assert book["status"] == "live"
    assert book["bids"] == SNAP_BIDS and book["asks"] == SNAP_ASKS
    assert book["seq"] == 13079592 and book["exch_ts"] == 1671179923028 * 1_000_000
    h.feed(fixture("orderbook_delta"))
    book = h.book()
    assert book["status"] == "live"
    assert book["bids"] == SNAP_BIDS
    assert book["asks"] == [["17440.5", "78.857"], ["17441", "8.858"], ["17442", "1.51"],
                            ["17464.5", "4.901"], ["17465", "5.744"]]
    assert book["seq"] == 13079593 and book["exch_ts"] == 1671179923046 * 1_000_000
    st_ = h.stats.sym("BTCUSDT")
    assert (st_.snapshots, st_.messages, st_.levels, st_.gaps, st_.malformed) == (1, 2, 10, 0, 0)
    assert h.sent() == []


def test_delta_before_any_snapshot_is_not_applied():
    h = Harness()
    h.feed(fixture("orderbook_delta"))
    book = h.book()
    assert book["status"] == "syncing" and book["bids"] == [] and book["asks"] == []
    assert h.stats.sym("BTCUSDT").messages == 0 and h.stats.sym("BTCUSDT").gaps == 0
    assert h.stats.ignored_frames == 1
    assert h.sent() == []          # the subscription's snapshot is already on its way
    h.feed(fixture("orderbook_snapshot"))
    h.feed(fixture("orderbook_delta"))
    assert h.book()["status"] == "live" and h.book()["asks"][2] == ["17442", "1.51"]


def test_gap_is_detected_counted_and_resynced_by_resubscribing():
    h = synced()
    h.feed(delta(13079594, asks=[["17442.00", "1.510"]]))      # 13079593 never came
    st_ = h.stats.sym("BTCUSDT")
    assert st_.gaps == 1 and st_.resyncs == 1
    book = h.book()
    assert book["status"] == "stale" and book["asks"] == SNAP_ASKS   # the delta not applied
    assert [(m["op"], m["args"]) for m in h.sent()] == [
        ("unsubscribe", ["orderbook.50.BTCUSDT"]), ("subscribe", ["orderbook.50.BTCUSDT"])]
    h.feed(delta(13079595, bids=[["17439.50", "0"]]))        # in flight: ignored
    assert h.stats.sym("BTCUSDT").gaps == 1 and h.sent() == []
    h.feed(snapshot(13079600, [["17430.00", "1.000"]], [["17450.00", "2.000"]]))
    h.feed(delta(13079601, bids=[["17431.00", "0.500"]]))
    book = h.book()
    assert book["status"] == "live"
    assert book["bids"] == [["17431", "0.5"], ["17430", "1"]] and book["asks"] == [["17450", "2"]]


@pytest.mark.parametrize("u", [13079592, 13079591, 1])
def test_repeated_or_backward_update_id_is_a_gap(u):
    h = synced()
    h.feed(delta(u, bids=[["17439.50", "9.000"]]))
    assert h.stats.sym("BTCUSDT").gaps == 1 and h.book()["status"] == "stale"
    assert h.book()["bids"] == SNAP_BIDS


def test_u1_restart_snapshot_replaces_the_book_without_a_gap():
    h = synced()
    h.feed(fixture("orderbook_delta"))
    h.feed(snapshot(1, [["17400.00", "1.000"]], [["17500.00", "2.000"]]))
    assert h.proto.restarts["BTCUSDT"] == 1
    st_ = h.stats.sym("BTCUSDT")
    assert st_.gaps == 0 and st_.resyncs == 0 and st_.snapshots == 2
    book = h.book()
    assert book["status"] == "live" and book["seq"] == 1
    assert book["bids"] == [["17400", "1"]] and book["asks"] == [["17500", "2"]]
    h.feed(delta(2, asks=[["17499.00", "0.100"]]))            # u goes on from 1
    assert h.book()["asks"] == [["17499", "0.1"], ["17500", "2"]]
    h.feed(delta(4, asks=[["17498.00", "0.100"]]))
    assert h.stats.sym("BTCUSDT").gaps == 1 and h.proto.restarts["BTCUSDT"] == 1


def test_a_later_snapshot_replaces_the_book():
    h = synced()
    h.feed(snapshot(13079700, [["17300.00", "3.000"]], [["17600.00", "4.000"]]))
    assert h.book()["bids"] == [["17300", "3"]] and h.book()["asks"] == [["17600", "4"]]
    h.feed(delta(13079701, bids=[["17300.00", "0"]]))
    assert h.book()["bids"] == [] and h.book()["status"] == "live"
    assert h.stats.sym("BTCUSDT").gaps == 0 and h.proto.restarts["BTCUSDT"] == 0


# -- bad input ------------------------------------------------------------------------------
@pytest.mark.parametrize("frame", [b'{"topic": "orderbook.50.BTCUSDT", "type":', b"[1, 2]",
                                   b'"pong"', b'{"hello": "world"}', b'{"topic": 5}'])
def test_garbage_is_counted_and_touches_no_book(frame):
    h = synced()
    h.feed(frame)
    assert h.stats.malformed_frames == 1
    assert h.stats.sym("BTCUSDT").resyncs == 0 and h.book()["status"] == "live"


@pytest.mark.parametrize("mutate", [
    lambda m: m["data"]["a"].append(["17450.x0", "1.000"]),     # not a number
    lambda m: m["data"]["a"].append(["17450.001", "1.000"]),    # beyond the price scale
    lambda m: m["data"]["a"].append(["17450.00", "-1.000"]),    # negative size
    lambda m: m["data"]["a"].append(["17450.00"]),              # no size
    lambda m: m["data"]["a"].append([17450, 1]),                # numbers, not strings
    lambda m: m["data"]["a"].append(["17450.00", "1.000", "x"]),  # not a pair
    lambda m: m["data"]["a"].append(7),                         # not a level at all
    lambda m: m["data"].update(u="13079593"),                   # u not an integer
    lambda m: m["data"].update(a=None),
    lambda m: m.update(data=[]),
    lambda m: m.update(type="partial"),
])
def test_bad_delta_for_a_known_symbol_resyncs_that_book(mutate):
    h = synced()
    msg = fixture("orderbook_delta")
    mutate(msg)
    h.feed(msg)
    st_ = h.stats.sym("BTCUSDT")
    assert st_.malformed == 1 and st_.resyncs == 1 and st_.gaps == 0
    assert h.book()["status"] == "stale" and h.book()["asks"] == SNAP_ASKS
    assert [m["op"] for m in h.sent()] == ["unsubscribe", "subscribe"]


def test_other_symbols_and_topics_are_counted_not_applied():
    h = synced()
    h.feed(delta(5, asks=[["1.00", "1.000"]], symbol="ETHUSDT"))
    h.feed(delta(13079593, asks=[["1.00", "1.000"]], depth=200))
    h.feed({"topic": "publicTrade.BTCUSDT", "type": "snapshot", "ts": 1, "data": []})
    assert h.stats.unknown_symbol_frames == 1 and h.stats.ignored_frames == 2
    assert h.book()["asks"] == SNAP_ASKS and h.stats.malformed_frames == 0


# -- control messages -----------------------------------------------------------------------
def test_ping_pong_and_acks():
    h = synced()
    assert orjson.loads(h.proto.ping_message()) == {"op": "ping"}
    assert Bybit.ping_interval == 20.0
    h.feed(fixture("pong"))
    h.feed({"req_id": "test", "op": "pong", "args": ["1675418560633"], "conn_id": "x"})
    h.feed(fixture("subscribe_ack"))
    assert h.proto.pongs == 2 and h.stats.ignored_frames == 3
    assert h.stats.malformed_frames == 0 and h.book()["status"] == "live"


def test_rejected_subscription_marks_its_books_stale_and_is_retried_later():
    h = Harness(symbols=("BTCUSDT", "BTCPERP"))
    (sub,) = [orjson.loads(m) for m in h.proto.subscribe_messages(["BTCUSDT", "BTCPERP"])]
    h.feed(snapshot(10, [["17400.0", "1.000"]], [["17500.0", "1.000"]], symbol="BTCPERP"))
    h.feed({"success": False, "ret_msg": "error:handler not found,topic:orderbook.50.BTCUSDT",
            "conn_id": "c", "req_id": sub["req_id"], "op": "subscribe"})
    assert h.book(0)["status"] == "stale" and h.stats.reasons["subscribe rejected"] == 2
    assert h.stats.malformed_frames == 0 and h.sent() == []
    for s in h.proto.sync.values():                    # pretend the timeout has passed
        s.awaiting = time.monotonic() - h.proto.resubscribe_timeout - 1
    h.feed(fixture("pong"))
    sent = h.sent()
    assert [(m["op"], m["args"]) for m in sent] == [
        ("unsubscribe", ["orderbook.50.BTCUSDT"]), ("subscribe", ["orderbook.50.BTCUSDT"]),
        ("unsubscribe", ["orderbook.50.BTCPERP"]), ("subscribe", ["orderbook.50.BTCPERP"])]
    assert h.stats.reasons["snapshot timeout"] == 2
    h.feed(fixture("pong"))
    assert h.sent() == []                              # not again before the next timeout
    h.feed({"success": False, "ret_msg": "error:boom", "conn_id": "c", "req_id": "zz",
            "op": "subscribe"})
    assert h.stats.malformed_frames == 1               # a failure we did not ask for


def test_snapshot_clears_the_wait_and_disconnect_stops_resubscribing():
    h = synced()
    assert h.proto.sync["BTCUSDT"].awaiting is None
    h.proto.on_disconnect()
    h.drain()
    assert h.book()["status"] == "stale"
    h.proto.resync("BTCUSDT", "test")
    assert h.sent() == []                              # the next connection subscribes
    h.proto.on_connect()
    h.drain()
    assert h.book()["status"] == "syncing" and h.proto.sync["BTCUSDT"].awaiting is not None


def test_subscribe_batches_follow_the_category_limits():
    names = [f"S{i}USDT" for i in range(120)]
    linear = [orjson.loads(m) for m in Bybit({}, {}).subscribe_messages(names)]
    assert [len(m["args"]) for m in linear] == [50, 50, 20]
    assert linear[0]["op"] == "subscribe" and linear[0]["args"][0] == "orderbook.1000.S0USDT"
    assert len({m["req_id"] for m in linear}) == 3
    spot = [orjson.loads(m) for m in BybitSpot({}, {}).subscribe_messages(names[:25])]
    assert [len(m["args"]) for m in spot] == [10, 10, 5]
    assert [a for m in spot for a in m["args"]] == [f"orderbook.1000.{n}" for n in names[:25]]


def test_endpoints_and_depths():
    assert Bybit.ws_url == "wss://stream.bybit.com/v5/public/linear" and Bybit.depth == 1000
    assert BybitSpot.ws_url.endswith("/v5/public/spot") and BybitSpot.depth == 1000
    assert BybitInverse.ws_url.endswith("/v5/public/inverse") and BybitInverse.depth == 1000
    assert Bybit.instrument_urls() == [
        "https://api.bybit.com/v5/market/instruments-info?category=linear&limit=1000"]
    assert BybitSpot.instrument_urls() == [
        "https://api.bybit.com/v5/market/instruments-info?category=spot"]
    from connectors import protocol
    assert protocol("bybit") is Bybit
    with pytest.raises(ConfigError, match="depth 500"):
        Bybit({}, {}, depth=500)


# -- instruments ----------------------------------------------------------------------------
def test_linear_instruments():
    got = {n: (i.unified, i.price_decimals, i.size_decimals, i.tick, i.lot, i.kind)
           for n, i in LINEAR.items()}
    assert got == {
        "BTCUSDT": ("BTC-USDT-PERP", 2, 3, "0.10", "0.001", "perp"),
        "BTCPERP": ("BTC-USDC-PERP", 1, 3, "0.5", "0.001", "perp"),
        "BTC-26DEC25": ("BTC-USDT-20251226", 2, 3, "0.50", "0.001", "future"),
    }                                                  # NEWUSDT is PreLaunch: no book yet
    assert all(i.exchange == "bybit" for i in LINEAR.values())


def test_spot_and_inverse_instruments():
    spot = BybitSpot.parse_instruments((FIXTURES / "bybit_instruments_spot.json").read_bytes())
    assert {n: (i.unified, i.price_decimals, i.size_decimals, i.kind)
            for n, i in spot.items()} == {"BTCUSDT": ("BTC-USDT", 2, 6, "spot"),
                                           "XRPUSDT": ("XRP-USDT", 4, 2, "spot")}
    inv = BybitInverse.parse_instruments(
        (FIXTURES / "bybit_instruments_inverse.json").read_bytes())
    assert {n: (i.unified, i.price_decimals, i.size_decimals, i.kind)
            for n, i in inv.items()} == {"BTCUSD": ("BTC-USD-PERP", 2, 0, "perp"),
                                          "BTCUSDH25": ("BTC-USD-20250328", 2, 0, "future")}
    assert {i.exchange for i in spot.values()} == {"bybit_spot"}


def test_instrument_list_errors_are_config_errors():
    with pytest.raises(ConfigError, match="instrument list error"):
        Bybit.parse_instruments(b'{"retCode": 10001, "retMsg": "params error", "result": {}}')
    with pytest.raises(ConfigError, match="expected linear"):
        Bybit.parse_instruments((FIXTURES / "bybit_instruments_spot.json").read_bytes())
    doc = fixture("instruments_linear")
    del doc["result"]["list"][1]["priceFilter"]             # one broken entry: skipped
    doc["result"]["list"][2]["priceScale"] = "many"
    assert set(Bybit.parse_instruments(orjson.dumps(doc))) == {"BTCUSDT"}


def test_spot_book_with_six_size_decimals():
    spot = BybitSpot.parse_instruments((FIXTURES / "bybit_instruments_spot.json").read_bytes())
    h = Harness(cls=BybitSpot, instruments=spot, depth=None)
    h.feed(snapshot(7, [["16638.64", "0.008502"]], [["16638.65", "0.100000"]], depth=1000))
    assert h.book()["bids"] == [["16638.64", "0.008502"]]
    assert h.book()["asks"] == [["16638.65", "0.1"]]


# -- property: any in-sequence stream rebuilds the book; one lost delta is always caught ----
levels = st.lists(st.tuples(st.integers(0, 9), st.sampled_from(["0", "0.001", "1.5", "20"])),
                  max_size=4)
events = st.lists(st.tuples(levels, levels), min_size=1, max_size=25)


def _apply(book: dict, side: str, changes) -> list[list[str]]:
    out = []
    for i, size in changes:
        price = f"{(90 + i) if side == 'b' else (101 + i)}.00"   # bids < asks: never crossed
        out.append([price, size])
        if size == "0":
            book.pop(price, None)
        else:
            book[price] = size
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=events, lost=st.integers(0, 30))
def test_stream_rebuilds_reference_book_or_detects_the_lost_delta(events, lost):
    from decimal import Decimal

    h = Harness()
    h.feed(snapshot(500, [["95.00", "1"]], [["105.00", "1"]]))
    ref = {"b": {"95.00": "1"}, "a": {"105.00": "1"}}
    dropped = False
    for k, (b, a) in enumerate(events):
        frame = delta(501 + k, _apply(ref["b"], "b", b), _apply(ref["a"], "a", a))
        if k == lost and k < len(events) - 1:
            dropped = True
            continue
        h.feed(frame)
    st_ = h.stats.sym("BTCUSDT")
    if dropped:
        assert st_.gaps == 1 and h.book()["status"] == "stale"
        return
    assert st_.gaps == 0 and h.book()["status"] == "live"

    def norm(side: dict, rev: bool) -> list[list[str]]:
        items = sorted(((Decimal(p), Decimal(q)) for p, q in side.items()), reverse=rev)
        return [[format(p.normalize(), "f"), format(q.normalize(), "f")] for p, q in items]

    assert h.book()["bids"] == norm(ref["b"], True)
    assert h.book()["asks"] == norm(ref["a"], False)
