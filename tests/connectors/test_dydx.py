"""dYdX v4 indexer ``v4_orderbook`` protocol on fixtures written in the documented
message shapes (connected / subscribed / channel_data / channel_batch_data /
unsubscribed / error, and the /v4/perpetualMarkets listing): exact books, the
per-connection message_id chain (a jump resyncs every book of the connection), the old
subscription's tail dropped, crossed books tolerated then resynced when they last, bad
frames counted."""

from __future__ import annotations

import time

import orjson
import pytest

from connectors.base import ConfigError
from connectors.dydx import DyDx
from tests.connectors.harness import ExchangeHarness

# -- fixtures, in the shapes the indexer documentation shows ----------------------------
MARKETS = {"markets": {
    "BTC-USD": {"clobPairId": "0", "ticker": "BTC-USD", "status": "ACTIVE",
                "oraclePrice": "64000.12", "tickSize": "1", "stepSize": "0.0001",
                "atomicResolution": -10, "quantumConversionExponent": -9,
                "subticksPerTick": 100000, "stepBaseQuantums": 1000000},
    "ETH-USD": {"clobPairId": "1", "ticker": "ETH-USD", "status": "ACTIVE",
                "tickSize": "0.1", "stepSize": "0.001"},
    "PEPE-USD": {"clobPairId": "9", "ticker": "PEPE-USD", "status": "CANCEL_ONLY",
                 "tickSize": "1e-10", "stepSize": "1000000"},
    "BAD-USD": {"ticker": "BAD-USD", "tickSize": 0.1, "stepSize": "1"},  # a float: skipped
}}
CONNECTED = {"type": "connected", "connection_id": "004a1efa-21bb-4b19-a2e9-a8ffadd6dc53",
             "message_id": 0}
CONN = CONNECTED["connection_id"]


def subscribed(mid, bids, asks, market="ETH-USD"):
    return {"type": "subscribed", "connection_id": CONN, "message_id": mid,
            "channel": "v4_orderbook", "id": market,
            "contents": {"bids": [{"price": p, "size": q} for p, q in bids],
                         "asks": [{"price": p, "size": q} for p, q in asks]}}


def update(mid, bids=None, asks=None, market="ETH-USD"):
    contents = {}
    if bids is not None:
        contents["bids"] = [list(x) for x in bids]
    if asks is not None:
        contents["asks"] = [list(x) for x in asks]
    return {"type": "channel_data", "connection_id": CONN, "message_id": mid,
            "id": market, "channel": "v4_orderbook", "version": "1.0.0",
            "contents": contents}


INSTRUMENTS = DyDx.parse_instruments(orjson.dumps(MARKETS))


class Harness(ExchangeHarness):
    """One protocol writing into a real ring and store, drained after every frame."""

    def __init__(self, symbols=("ETH-USD",), **options) -> None:
        super().__init__(DyDx, symbols, depth=1000, instruments=INSTRUMENTS, options=options,
                         recv_ns=time.monotonic_ns)
        self.sent()     # the initial subscribes are the runner's business


def test_instruments_scales_names_and_exact_text():
    eth, btc, pepe = INSTRUMENTS["ETH-USD"], INSTRUMENTS["BTC-USD"], INSTRUMENTS["PEPE-USD"]
    assert (btc.unified, btc.kind, btc.price_decimals, btc.size_decimals) == \
        ("BTC-USD-PERP", "perp", 2, 6)
    assert (eth.price_decimals, eth.size_decimals, eth.tick, eth.lot) == (3, 5, "0.1", "0.001")
    assert (pepe.price_decimals, pepe.size_decimals, pepe.status) == (12, 2, "CANCEL_ONLY")
    assert "BAD-USD" not in INSTRUMENTS and btc.clob_pair_id == "0"
    assert DyDx.instrument_urls() == ["https://indexer.dydx.trade/v4/perpetualMarkets"]
    with pytest.raises(ConfigError):
        DyDx.parse_instruments(b'{"errors":[{"msg":"nope"}]}')


def test_subscribe_messages_are_one_per_market():
    h = Harness(("ETH-USD", "BTC-USD"))
    msgs = [orjson.loads(m) for m in h.proto.subscribe_messages(["ETH-USD", "BTC-USD"])]
    assert msgs == [{"type": "subscribe", "channel": "v4_orderbook", "id": "ETH-USD",
                     "batched": False},
                    {"type": "subscribe", "channel": "v4_orderbook", "id": "BTC-USD",
                     "batched": False}]
    assert h.proto.ping_message() is None          # the server pings; the library pongs


def test_snapshot_then_updates_give_the_exact_book():
    h = Harness()
    h.feed(CONNECTED)
    h.feed(update(1, bids=[("1499.9", "5")]))      # before any snapshot: not applied
    assert h.stats.ignored_frames == 2 and h.book()["status"] == "syncing"
    h.feed(subscribed(2, [("1499.9", "31.231"), ("1499.8", "2")],
                      [("1500.1", "31.231"), ("1500.3", "0.5")]))
    assert h.book()["status"] == "live"
    h.feed(update(3, bids=[("1499.9", "0"), ("1499.7", "1.25")]))   # "0" deletes
    h.feed(update(4, asks=[("1500.2", "0.001")]))                    # one side only
    d = h.book()
    assert d["bids"] == [["1499.8", "2"], ["1499.7", "1.25"]]
    assert d["asks"] == [["1500.1", "31.231"], ["1500.2", "0.001"], ["1500.3", "0.5"]]
    assert d["status"] == "live" and d["seq"] == 4
    st = h.stats.sym("ETH-USD")
    assert (st.snapshots, st.messages, st.gaps, st.malformed) == (1, 3, 0, 0)


def test_batched_updates_apply_in_order():
    h = Harness(batched=True)
    assert orjson.loads(h.proto.subscribe_messages(["ETH-USD"])[0])["batched"] is True
    h.feed(CONNECTED)
    h.feed(subscribed(1, [("100", "1")], [("101", "1")]))
    h.feed({"type": "channel_batch_data", "connection_id": CONN, "message_id": 2,
            "id": "ETH-USD", "channel": "v4_orderbook", "version": "1.0.0",
            "contents": [{"bids": [["100", "3"]]}, {"asks": [["102", "2"]]},
                         {"bids": [["100", "0"], ["99.5", "4"]]}]})
    assert h.book()["bids"] == [["99.5", "4"]] and h.book()["asks"] == [["101", "1"],
                                                                       ["102", "2"]]
    assert h.stats.sym("ETH-USD").messages == 2


def test_message_id_gap_resyncs_every_book_of_the_connection():
    h = Harness(("ETH-USD", "BTC-USD"))
    h.feed(CONNECTED)
    h.feed(subscribed(1, [("100", "1")], [("101", "1")]))
    h.feed(subscribed(2, [("64000", "0.5")], [("64001", "1")], market="BTC-USD"))
    h.feed(update(3, bids=[("100", "2")]))
    assert h.book(0)["status"] == h.book(1)["status"] == "live"
    h.feed(update(5, bids=[("100", "9")]))           # 4 is missing: whose was it?
    assert h.proto.connection_gaps == 1
    assert [h.stats.sym(s).gaps for s in ("ETH-USD", "BTC-USD")] == [1, 1]
    assert h.book(0)["status"] == h.book(1)["status"] == "stale"
    assert h.book(0)["bids"] == [["100", "2"]]        # the update after the gap: dropped
    sent = h.sent()
    assert [(m["type"], m["id"]) for m in sent] == [
        ("unsubscribe", "ETH-USD"), ("unsubscribe", "BTC-USD"),
        ("subscribe", "ETH-USD"), ("subscribe", "BTC-USD")]
    h.feed(update(6, bids=[("100", "7")]))           # old subscription's tail: dropped
    h.feed({"type": "unsubscribed", "connection_id": CONN, "message_id": 7,
            "channel": "v4_orderbook", "id": "ETH-USD"})
    h.feed({"type": "unsubscribed", "connection_id": CONN, "message_id": 8,
            "channel": "v4_orderbook", "id": "BTC-USD"})
    h.feed(subscribed(9, [("100", "9")], [("101", "1")]))
    h.feed(subscribed(10, [("64000", "1")], [("64002", "1")], market="BTC-USD"))
    assert h.book(0)["status"] == h.book(1)["status"] == "live"
    assert h.book(0)["bids"] == [["100", "9"]] and h.book(1)["asks"] == [["64002", "1"]]
    assert h.proto.connection_gaps == 1 and not h.sent()
    h.feed(update(10, bids=[("100", "1")]))          # a repeated id is a gap too
    assert h.proto.connection_gaps == 2 and h.stats.sym("ETH-USD").gaps == 2


def test_reconnect_restarts_the_message_id_chain():
    h = Harness()
    h.feed(CONNECTED)
    h.feed(subscribed(1, [("100", "1")], [("101", "1")]))
    h.proto.on_disconnect()
    h.drain()
    assert h.book()["status"] == "stale"
    h.proto.on_connect()
    h.feed(CONNECTED)                                  # 0 again: not a gap
    h.feed(subscribed(1, [("100", "2")], [("101", "1")]))
    assert h.book()["status"] == "live" and h.proto.connection_gaps == 0


def test_crossed_book_is_tolerated_then_resynced_when_it_lasts():
    h = Harness(crossed_grace=0.2)
    h.feed(CONNECTED)
    h.feed(subscribed(1, [("100", "1")], [("101", "1")]))
    h.feed(update(2, bids=[("101.5", "2")]))          # crosses the best ask
    st = h.stats.sym("ETH-USD")
    assert h.book()["status"] == "crossed" and st.crossed == 1 and st.resyncs == 0
    assert h.book()["bids"][0] == ["101.5", "2"]      # the venue's levels, kept exactly
    h.feed(update(3, asks=[("102", "1")]))            # still crossed
    assert h.book()["status"] == "crossed" and st.crossed == 1
    h.feed(update(4, bids=[("101.5", "0")]))          # uncrossed: live again
    assert h.book()["status"] == "live" and st.resyncs == 0 and not h.sent()
    h.feed(update(5, bids=[("103", "1")]))            # crossed again ... and it lasts
    assert h.book()["status"] == "crossed" and st.crossed == 2
    time.sleep(0.3)
    h.proto.check_health()
    h.drain()
    assert st.resyncs == 1 and h.book()["status"] == "stale" and st.gaps == 0
    assert h.stats.reasons["crossed too long"] == 1
    assert [m["type"] for m in h.sent()] == ["unsubscribe", "subscribe"]


def test_bad_frames_are_counted_and_bad_books_resynced():
    h = Harness()
    h.feed(CONNECTED)
    h.feed(subscribed(1, [("100", "1")], [("101", "1")]))
    h.feed('{"type": "channel_data", not json')
    h.feed("[1, 2]")
    h.feed({"type": "error", "message": "Invalid subscription id for channel: (x-y)",
            "connection_id": CONN, "message_id": 2})
    assert h.stats.malformed_frames == 3 and h.proto.errors == 1
    assert h.book()["status"] == "live"               # no book concerned
    h.feed(update(3, bids=[("1x0", "1")]))             # unparsable price
    st = h.stats.sym("ETH-USD")
    assert st.malformed == 1 and h.book()["status"] == "stale"
    assert [m["type"] for m in h.sent()] == ["unsubscribe", "subscribe"]
    h.feed(subscribed(4, [("100", "1")], [("101", "1")]))
    h.feed(update(5, bids=[("100.0001", "1")]))        # finer than the scale (3 decimals)
    assert st.malformed == 2 and h.book()["status"] == "stale"
    h.sent()
    h.feed(subscribed(6, [("100", "1")], [("101", "1")]))
    h.feed(update(7, bids=[{"price": "100", "size": "1"}]))   # snapshot shape in an update
    h.feed(update(8, asks=[["101", "-1"]]))    # the book is resyncing: not looked at
    assert st.malformed == 3 and h.stats.ignored_frames == 2
    h.feed(subscribed(9, [("100", "1")], [("101", "1")]))
    h.feed(update(10, asks=[["101", "-1"]]))                   # negative size
    assert st.malformed == 4 and h.book()["status"] == "stale"
    h.feed(update(11, market="DOGE-USD", bids=[("1", "1")]))
    assert h.stats.unknown_symbol_frames == 1
    h.feed({"type": "channel_data", "connection_id": CONN, "id": "ETH-USD",
            "channel": "v4_orderbook", "contents": {}})       # no message_id
    h.feed(update("12", bids=[]))                              # id of the wrong type
    assert h.stats.malformed_frames == 5 and h.proto.connection_gaps == 0
    h.feed({"type": "channel_data", "connection_id": CONN, "message_id": 12,
            "id": "BTC-USD", "channel": "v4_trades", "contents": {"trades": []}})
    assert h.proto.connection_gaps == 0 and h.stats.sym("ETH-USD").gaps == 0


def test_deep_snapshot_is_cut_to_the_best_levels():
    h = Harness()
    h.proto.depth = 3
    h.feed(CONNECTED)
    bids = [(f"{100 - i}", "1") for i in range(6)][::-1]      # worst first, unsorted
    asks = [(f"{101 + i}", "1") for i in range(6)]
    h.feed(subscribed(1, bids, asks))
    assert [p for p, _ in h.book()["bids"]] == ["100", "99", "98"]
    assert [p for p, _ in h.book()["asks"]] == ["101", "102", "103"]
