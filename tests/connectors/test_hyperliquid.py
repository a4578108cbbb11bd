"""Hyperliquid l2Book protocol on fixtures written in the documented shapes (WsBook with
WsLevel {px, sz, n}; subscriptionResponse; pong; error; the info ``meta`` response):
every message is a complete picture and gives an exact book; an older ``time`` is
dropped and counted, a run of them resyncs; bad frames and numbers finer than the
instrument scale are counted and resync the book; crossed pictures resync; instruments
parse to the documented scales (6 - szDecimals price decimals, szDecimals size decimals)."""

from __future__ import annotations

import orjson
import pytest

from connectors.base import ConfigError
from connectors.hyperliquid import STALE_LIMIT, Hyperliquid
from tests.connectors.harness import ExchangeHarness

# the info endpoint's {"type":"meta"} answer, in the documented shape
META = {
    "universe": [
        {"name": "BTC", "szDecimals": 5, "maxLeverage": 50},
        {"name": "ETH", "szDecimals": 4, "maxLeverage": 50},
        {"name": "HPOS", "szDecimals": 0, "maxLeverage": 3, "onlyIsolated": True},
        {"name": "LOOM", "szDecimals": 1, "maxLeverage": 3, "onlyIsolated": True,
         "isDelisted": True},
    ],
    "marginTables": [[50, {"description": "", "marginTiers": [
        {"lowerBound": "0.0", "maxLeverage": 50}]}]],
}
INSTRUMENTS = Hyperliquid.parse_instruments(orjson.dumps(META))

SUB_ACK = {"channel": "subscriptionResponse", "data": {
    "method": "subscribe", "subscription": {"type": "l2Book", "coin": "BTC"}}}
PONG = {"channel": "pong"}
T0 = 1700000000000


def book_msg(t: int, bids, asks, coin: str = "BTC") -> dict:
    """A WsBook message; levels given as (px, sz) pairs, best first."""
    return {"channel": "l2Book", "data": {
        "coin": coin, "time": t,
        "levels": [[{"px": p, "sz": s, "n": 2} for p, s in bids],
                   [{"px": p, "sz": s, "n": 1} for p, s in asks]]}}


FIRST = book_msg(T0, [("67000.0", "1.5"), ("66999.5", "0.00123"), ("66998", "3")],
                 [("67001.5", "0.25"), ("67002.0", "12.345")])
SECOND = book_msg(T0 + 500, [("67000.5", "0.1")], [("67001.0", "2"), ("67003.1", "0.5")])


class Harness(ExchangeHarness):
    """One protocol writing into a real ring and store, drained after every frame."""

    def __init__(self, symbols=("BTC",)) -> None:
        super().__init__(Hyperliquid, symbols, instruments=INSTRUMENTS, recv_ns=123)


def levels(msg: dict, side: int) -> list[list[str]]:
    """What the book should hold for one side of a message (canonical decimal text)."""
    def canon(x: str) -> str:
        return x.rstrip("0").rstrip(".") if "." in x else x
    return [[canon(lv["px"]), canon(lv["sz"])] for lv in msg["data"]["levels"][side]]


def test_instruments_parse_to_documented_scales():
    assert sorted(INSTRUMENTS) == ["BTC", "ETH", "HPOS"]       # delisted LOOM skipped
    btc, eth, hpos = INSTRUMENTS["BTC"], INSTRUMENTS["ETH"], INSTRUMENTS["HPOS"]
    assert (btc.native, btc.unified, btc.kind) == ("BTC", "BTC-USDC-PERP", "perp")
    assert (btc.price_decimals, btc.size_decimals) == (1, 5)
    assert (eth.price_decimals, eth.size_decimals) == (2, 4)
    assert (hpos.price_decimals, hpos.size_decimals) == (6, 0)
    for bad in (b"[]", b'{"universe": 3}', b'{"universe":[{"name":"X"}]}',
                b'{"universe":[{"name":"X","szDecimals":"5"}]}',
                b'{"universe":[{"name":"X","szDecimals":9}]}'):
        with pytest.raises(ConfigError):
            Hyperliquid.parse_instruments(bad)
    assert Hyperliquid.instrument_urls() == ["https://api.hyperliquid.xyz/info"]


def test_subscribe_resubscribe_and_ping_messages():
    h = Harness(("BTC", "ETH"))
    assert [orjson.loads(m) for m in h.proto.subscribe_messages(["BTC", "ETH"])] == [
        {"method": "subscribe", "subscription": {"type": "l2Book", "coin": c}}
        for c in ("BTC", "ETH")]
    assert orjson.loads(h.proto.ping_message()) == {"method": "ping"}
    assert h.proto.ping_interval < 60
    h.proto.resync("ETH", "test")
    h.proto.check_health()
    assert h.sent() == [
        {"method": "unsubscribe", "subscription": {"type": "l2Book", "coin": "ETH"}},
        {"method": "subscribe", "subscription": {"type": "l2Book", "coin": "ETH"}}]


def test_every_message_is_a_complete_picture():
    h = Harness()
    assert h.book()["status"] == "syncing"
    h.feed(SUB_ACK)
    h.feed(PONG)
    assert h.stats.ignored_frames == 2 and h.proto.acks == 1 and h.proto.pongs == 1
    h.feed(FIRST)
    b = h.book()
    assert b["status"] == "live"
    assert b["bids"] == levels(FIRST, 0) == [["67000", "1.5"], ["66999.5", "0.00123"],
                                             ["66998", "3"]]
    assert b["asks"] == levels(FIRST, 1)
    assert b["exch_ts"] == T0 * 1_000_000
    h.feed(SECOND)                              # levels absent from it are gone
    b = h.book()
    assert (b["bids"], b["asks"]) == (levels(SECOND, 0), levels(SECOND, 1))
    st = h.stats.sym("BTC")
    assert (st.snapshots, st.resyncs, st.malformed, st.gaps) == (2, 0, 0, 0)
    h.feed(book_msg(T0 + 500, [], []))          # same time: applied (an empty book)
    assert h.book()["bids"] == [] and h.book()["asks"] == []


def test_older_time_dropped_and_counted_and_a_run_resyncs():
    h = Harness()
    h.feed(SECOND)
    h.feed(FIRST)                               # 500 ms older: dropped
    b = h.book()
    assert b["status"] == "live" and b["bids"] == levels(SECOND, 0)
    assert h.proto.out_of_order["BTC"] == 1
    assert h.stats.reasons["out-of-order snapshot dropped"] == 1
    assert h.stats.sym("BTC").resyncs == 0 and h.sent() == []
    h.feed(book_msg(T0 + 600, [("67000.5", "0.2")], []))   # newer: applied, run reset
    for i in range(STALE_LIMIT - 1):
        h.feed(FIRST)
        assert h.book()["status"] == "live", i
    assert h.stats.sym("BTC").resyncs == 0
    h.feed(FIRST)                               # STALE_LIMIT in a row: the clock went back
    assert h.book()["status"] == "stale"
    assert h.stats.sym("BTC").resyncs == 1
    assert h.stats.reasons["l2Book time went backwards"] == 1
    assert [m["method"] for m in h.sent()] == ["unsubscribe", "subscribe"]
    h.feed(FIRST)                               # the clock was forgotten: accepted
    assert h.book()["status"] == "live" and h.book()["bids"] == levels(FIRST, 0)


def test_reconnect_forgets_the_clock():
    h = Harness()
    h.feed(SECOND)
    h.proto.on_disconnect()
    h.drain()
    assert h.book()["status"] == "stale"
    h.proto.on_connect()
    h.feed(FIRST)
    assert h.book()["status"] == "live" and h.proto.out_of_order["BTC"] == 0


@pytest.mark.parametrize("data", [
    {"coin": "BTC", "time": T0, "levels": [[{"px": "12..5", "sz": "1", "n": 1}], []]},
    {"coin": "BTC", "time": T0, "levels": [[{"px": "67000.05", "sz": "1", "n": 1}], []]},
    {"coin": "BTC", "time": T0, "levels": [[{"px": "67000", "sz": "0.000001", "n": 1}], []]},
    {"coin": "BTC", "time": T0, "levels": [[{"px": 67000.5, "sz": "1", "n": 1}], []]},
    {"coin": "BTC", "time": T0, "levels": [[["67000", "1"]], []]},
    {"coin": "BTC", "time": T0, "levels": [[]]},
    {"coin": "BTC", "time": T0},
    {"coin": "BTC", "time": "1700000000000", "levels": [[], []]},
    {"coin": "BTC", "time": 1.7e12, "levels": [[], []]},
    {"coin": "BTC", "time": -1, "levels": [[], []]},
])
def test_bad_book_counted_and_resynced(data):
    h = Harness()
    h.feed(FIRST)
    h.feed({"channel": "l2Book", "data": data})
    st = h.stats.sym("BTC")
    assert st.malformed == 1 and st.resyncs == 1
    assert h.book()["status"] == "stale"
    assert [m["method"] for m in h.sent()] == ["unsubscribe", "subscribe"]
    h.feed(SECOND)                              # the next picture heals it
    assert h.book()["status"] == "live" and h.book()["asks"] == levels(SECOND, 1)


def test_frames_not_about_a_book():
    h = Harness()
    h.feed(FIRST)
    h.feed(b'{"channel": "l2Book", "data": ')                 # not JSON
    h.feed(b"[1, 2]")                                          # not an object
    h.feed({"data": {}})                                       # no channel
    h.feed({"channel": "error", "data": "Invalid subscription"})
    h.feed({"channel": "l2Book", "data": []})                  # no data object
    assert h.stats.malformed_frames == 5
    h.feed(book_msg(T0, [], [], coin="DOGE"))                  # not ours
    assert h.stats.unknown_symbol_frames == 1
    h.feed({"channel": "trades", "data": []})
    assert h.stats.ignored_frames == 1
    assert h.stats.sym("BTC").resyncs == 0 and h.book()["status"] == "live"


def test_crossed_picture_resyncs():
    h = Harness()
    h.feed(book_msg(T0, [("67005", "1")], [("67001", "1")]))
    assert h.stats.sym("BTC").crossed == 1 and h.stats.sym("BTC").resyncs == 1
    assert h.book()["status"] == "stale"
    h.feed(SECOND)
    assert h.book()["status"] == "live"
