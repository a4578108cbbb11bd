"""Crypto.com Exchange v1 book protocol on fixtures written in the documented message
shapes (snapshot ``book``, delta ``book.update`` with u / pu, ``public/heartbeat``,
``public/get-instruments``): exact books, the u / pu chain and its gaps, heartbeat
answers, the one-second wait before the first request, malformed input."""

from __future__ import annotations

import orjson
import pytest

from connectors.base import ConfigError
from connectors.cryptocom import CryptoCom
from tests.connectors.harness import ExchangeHarness

INSTRUMENTS = {
    "id": 1, "method": "public/get-instruments", "code": 0,
    "result": {"data": [
        {"symbol": "BTC_USD", "inst_type": "CCY_PAIR", "display_name": "BTC/USD",
         "base_ccy": "BTC", "quote_ccy": "USD", "quote_decimals": 2,
         "quantity_decimals": 5, "price_tick_size": "0.01", "qty_tick_size": "0.00001",
         "max_leverage": "50", "tradable": True, "expiry_timestamp_ms": 0},
        {"symbol": "BTCUSD-PERP", "inst_type": "PERPETUAL_SWAP",
         "display_name": "BTCUSD Perpetual", "base_ccy": "BTC", "quote_ccy": "USD",
         "quote_decimals": 1, "quantity_decimals": 4, "price_tick_size": "0.1",
         "qty_tick_size": "0.0001", "max_leverage": "100", "tradable": True,
         "expiry_timestamp_ms": 0, "underlying_symbol": "BTCUSD-INDEX",
         "contract_size": "1"},
        {"symbol": "BTCUSD-260626", "inst_type": "FUTURE", "base_ccy": "BTC",
         "quote_ccy": "USD", "price_tick_size": "0.5", "qty_tick_size": "0.0001",
         "tradable": True, "expiry_timestamp_ms": 1782460800000},
        {"symbol": "BTCUSD-260626-CW100000", "inst_type": "OPTION", "base_ccy": "BTC",
         "quote_ccy": "USD", "price_tick_size": "1", "qty_tick_size": "0.01"},
    ]}}

INST = CryptoCom.parse_instruments(orjson.dumps(INSTRUMENTS))


def push(channel: str, entry: dict, symbol: str = "BTC_USD") -> dict:
    return {"id": -1, "method": "subscribe", "code": 0, "result": {
        "instrument_name": symbol, "subscription": f"book.{symbol}.50", "channel": channel,
        "depth": 50, "data": [entry]}}


def snapshot(u: int = 1000, symbol: str = "BTC_USD") -> dict:
    return push("book", {"bids": [["43737.46", "0.14096", "1"], ["43737.00", "1.5", "3"]],
                         "asks": [["43755.46", "0.10000", "1"], ["43760.10", "2.25000", "2"]],
                         "t": 1704484068898, "tt": 1704484068892, "u": u, "cs": -781431132},
                symbol)


def update(u: int, pu: int, bids=(), asks=(), symbol: str = "BTC_USD") -> dict:
    return push("book.update", {"update": {"bids": [list(x) for x in bids],
                                           "asks": [list(x) for x in asks]},
                                "t": 1704484068999, "tt": 1704484068990, "u": u, "pu": pu,
                                "cs": 12345}, symbol)


class Harness(ExchangeHarness):
    """The protocol writing into a real ring and store, drained after every frame."""

    def __init__(self, symbols=("BTC_USD",), delay: float = 0.0) -> None:
        super().__init__(CryptoCom, symbols, depth=1000, instruments=INST, recv_ns=123)
        self.proto.connect_delay = delay   # read when the held subscriptions are due
        assert self.proto.subscribe_messages(list(symbols)) == []
        self.proto.check_health()
        self.drain()


def synced() -> Harness:
    h = Harness()
    h.sent()
    h.feed(snapshot())
    return h


# -- instruments -----------------------------------------------------------------------
def test_instruments_parse_to_names_and_exact_scales():
    spot, perp, fut = INST["BTC_USD"], INST["BTCUSD-PERP"], INST["BTCUSD-260626"]
    assert (spot.unified, spot.kind, spot.price_decimals, spot.size_decimals) == \
        ("BTC-USD", "spot", 4, 7)
    assert (spot.tick, spot.lot) == ("0.01", "0.00001")
    assert (perp.unified, perp.kind, perp.price_decimals, perp.size_decimals) == \
        ("BTC-USD-PERP", "perp", 3, 6)
    assert (fut.unified, fut.kind) == ("BTC-USD-20260626", "future")
    assert "BTCUSD-260626-CW100000" not in INST          # options are not handled
    assert CryptoCom.instrument_urls() == \
        ["https://api.crypto.com/exchange/v1/public/get-instruments"]


def test_instrument_errors_are_config_errors():
    with pytest.raises(ConfigError):
        CryptoCom.parse_instruments(b'{"id":1,"code":10001,"message":"SYS_ERROR"}')
    with pytest.raises(ConfigError):
        CryptoCom.parse_instruments(b'{"id":1,"code":0,"result":{}}')
    bad = {"code": 0, "result": {"data": [dict(INSTRUMENTS["result"]["data"][0],
                                               price_tick_size=0.01)]}}
    with pytest.raises(ConfigError):                     # a float tick: refused
        CryptoCom.parse_instruments(orjson.dumps(bad))


# -- subscription and the connect delay ----------------------------------------------------
def test_subscribe_waits_the_connect_delay_then_sends_the_documented_request():
    h = Harness(symbols=("BTC_USD", "BTCUSD-PERP"), delay=60.0)
    assert h.sent() == []                                # nothing right after connect
    h.proto._connected_at -= 59.0                        # 59 s later: still waiting
    h.proto.check_health()
    assert h.sent() == []
    h.proto._connected_at -= 1.0                         # the delay is over
    h.proto.check_health()
    (req,) = h.sent()
    assert req["method"] == "subscribe" and isinstance(req["id"], int)
    assert req["params"] == {"channels": ["book.BTC_USD.50", "book.BTCUSD-PERP.50"],
                             "book_subscription_type": "SNAPSHOT_AND_UPDATE",
                             "book_update_frequency": 10}
    h.proto.check_health()
    assert h.sent() == []                                # sent once


def test_default_connect_delay_is_one_second():
    assert CryptoCom.connect_delay == 1.0


# -- the documented example ------------------------------------------------------------
def test_snapshot_then_chained_updates_give_the_exact_book():
    h = Harness()
    h.sent()
    assert h.book()["status"] == "syncing"
    h.feed(update(1000, 990, bids=[["43737.46", "5", "1"]]))   # before any snapshot
    assert h.stats.sym("BTC_USD").messages == 0
    h.feed(snapshot(u=1000))
    book = h.book()
    assert book["status"] == "live" and book["seq"] == 1000
    assert book["exch_ts"] == 1704484068898 * 1_000_000
    assert book["bids"] == [["43737.46", "0.14096"], ["43737", "1.5"]]
    assert book["asks"] == [["43755.46", "0.1"], ["43760.1", "2.25"]]
    h.feed(update(1007, 1000, bids=[["43737.46", "0", "0"], ["43738.00", "0.5", "2"]],
                  asks=[["43755.46", "0.30000", "2"]]))
    h.feed(update(1009, 1007))                                  # empty, chained
    h.feed(update(1012, 1009, asks=[["43760.10", "0", "0"]]))
    book = h.book()
    assert book["status"] == "live" and book["seq"] == 1012
    assert book["bids"] == [["43738", "0.5"], ["43737", "1.5"]]
    assert book["asks"] == [["43755.46", "0.3"]]
    st = h.stats.sym("BTC_USD")
    assert (st.gaps, st.resyncs, st.malformed, st.snapshots) == (0, 0, 0, 1)


def test_pu_mismatch_is_a_counted_gap_and_resubscribes():
    h = synced()
    h.feed(update(1005, 1000, bids=[["43738.00", "1", "1"]]))
    h.feed(update(1020, 1010, bids=[["43739.00", "1", "1"]]))   # 1005..1010 lost
    st = h.stats.sym("BTC_USD")
    assert st.gaps == 1 and st.resyncs == 1
    assert h.book()["status"] == "stale"
    assert h.book()["bids"][0] == ["43738", "1"]                 # the bad one not applied
    unsub, sub = h.sent()
    assert unsub["method"] == "unsubscribe" and unsub["params"]["channels"] == \
        ["book.BTC_USD.50"]
    assert sub["method"] == "subscribe" and sub["params"]["book_subscription_type"] == \
        "SNAPSHOT_AND_UPDATE"
    h.feed(update(1025, 1020))                                   # old tail: dropped
    assert st.gaps == 1 and h.book()["status"] == "stale"
    h.feed(snapshot(u=2000))
    h.feed(update(2003, 2000, asks=[["43755.46", "0", "0"]]))
    assert h.book()["status"] == "live" and h.book()["seq"] == 2003
    assert h.book()["asks"] == [["43760.1", "2.25"]]
    assert st.gaps == 1


def test_a_replayed_update_is_a_gap_too():
    h = synced()
    h.feed(update(1005, 1000))
    h.feed(update(1005, 1000))                                   # duplicate
    assert h.stats.sym("BTC_USD").gaps == 1


# -- heartbeats ------------------------------------------------------------------------
def test_heartbeat_is_answered_with_the_same_id():
    h = synced()
    h.sent()
    h.feed({"id": 1587523073344, "method": "public/heartbeat", "code": 0})
    assert h.sent() == [{"id": 1587523073344, "method": "public/respond-heartbeat"}]
    assert h.proto.heartbeats == 1 and h.book()["status"] == "live"


# -- bad input -------------------------------------------------------------------------
def test_garbage_and_venue_errors_are_counted_not_fatal():
    h = synced()
    h.feed(b'{"id": -1, "method": ')
    h.feed(b"[1, 2]")
    h.feed({"id": 3, "method": "subscribe", "code": 10004, "message": "BAD_REQUEST"})
    assert h.stats.malformed_frames == 3
    assert h.book()["status"] == "live"                          # no book was concerned
    h.feed({"id": 4, "method": "subscribe", "code": 0})          # an ack
    h.feed(push("trade", {"d": "1"}))                            # another channel
    assert h.stats.ignored_frames >= 2 and h.stats.malformed_frames == 3


@pytest.mark.parametrize("entry", [
    {"update": {"bids": [["12..5", "1", "1"]], "asks": []}, "u": 1001, "pu": 1000},
    {"update": {"bids": [[43737.5, "1", "1"]], "asks": []}, "u": 1001, "pu": 1000},
    {"update": {"bids": [["43737.5"]], "asks": []}, "u": 1001, "pu": 1000},
    {"update": {"bids": "nope"}, "u": 1001, "pu": 1000},
    {"bids": [], "asks": [], "u": 1001, "pu": 1000},
    {"update": {"bids": [], "asks": []}, "u": "1001", "pu": 1000},
    {"update": {"bids": [], "asks": []}, "u": 1001},
    {"update": {"bids": [["43737.123456789", "1", "1"]], "asks": []}, "u": 1001, "pu": 1000},
])
def test_malformed_update_is_counted_and_resyncs_the_book(entry):
    h = synced()
    h.sent()
    h.feed(push("book.update", entry))
    st = h.stats.sym("BTC_USD")
    assert st.malformed == 1 and st.resyncs == 1 and st.gaps == 0
    assert h.book()["status"] == "stale"
    assert [m["method"] for m in h.sent()] == ["unsubscribe", "subscribe"]
    assert h.book()["bids"][0] == ["43737.46", "0.14096"]        # nothing half-applied


def test_unknown_instrument_is_counted():
    h = synced()
    h.feed(snapshot(symbol="ETH_USD"))
    assert h.stats.unknown_symbol_frames == 1


def test_disconnect_marks_stale_and_reconnect_waits_again():
    h = synced()
    h.proto.on_disconnect()
    h.drain()
    assert h.book()["status"] == "stale"
    h.proto.connect_delay = 60.0
    h.proto.on_connect()
    h.proto.subscribe_messages(["BTC_USD"])
    h.proto.check_health()
    assert h.sent() == []
    h.feed(update(1005, 1000))                                   # no snapshot: ignored
    assert h.stats.sym("BTC_USD").gaps == 0
    h.proto._connected_at -= 60.0
    h.proto.check_health()
    assert [m["method"] for m in h.sent()] == ["subscribe"]
    h.feed(snapshot(u=5000))
    assert h.book()["status"] == "live" and h.book()["seq"] == 5000
