"""KuCoin against the loopback simulator: the bullet-public token handshake, welcome,
subscribe, ping/pong, REST level2_100 calibration, a forced sequence gap, a malformed
frame and a disconnect (a new token each time); every book ends equal to the truth.
First, the documented calibration rules driven frame by frame."""

import asyncio

import orjson
import pytest
import websockets

from connectors.base import RestRequest
from connectors.feed import ExchangeSpec
from connectors.kucoin import PARTIAL_LEVELS, KuCoin, KuCoinInstrument, parse_token
from simulator.kucoin import KuCoinVenue
from tests.connectors.harness import ProtocolHarness
from tests.connectors.loopback import all_live, quiesce_and_compare, start_feed, wait_for

SYMBOLS = ["BTC-USDT", "ETH-USDT", "SOL-USDT"]


# -- the protocol alone, frame by frame ---------------------------------------------------
class Harness(ProtocolHarness):
    """One KuCoin protocol, a store and a ring drained after every frame (like replay)."""

    def __init__(self, symbol: str = "BTC-USDT") -> None:
        inst = {symbol: KuCoinInstrument("kucoin", symbol, symbol, 4, 8, "0.01", "0.0001")}
        super().__init__(KuCoin, [symbol], 4, 8, depth=1000, ring_capacity=1 << 14,
                         instruments=inst)
        self.symbol = symbol

    def snapshot(self, seq: int, bids, asks) -> None:
        req = self.proto.rest_requests.popleft()
        assert req.url.endswith(f"/api/v1/market/orderbook/level2_100?symbol={self.symbol}")
        body = {"code": "200000", "data": {"sequence": str(seq), "time": 1, "bids": bids,
                                           "asks": asks}}
        self.proto.handle_rest(req, orjson.dumps(body), 0)
        self._drain()


def l2(start, end, bids=(), asks=(), symbol="BTC-USDT"):
    return {"type": "message", "topic": f"/market/level2:{symbol}", "subject": "trade.l2update",
            "data": {"changes": {"asks": [list(c) for c in asks], "bids": [list(c) for c in bids]},
                     "sequenceStart": start, "sequenceEnd": end, "symbol": symbol, "time": 2}}


def test_documented_calibration_example_then_a_gap():
    """KuCoin's example [K2]: snapshot at 16; a message 15..19 whose changes at <= 16 are
    ignored; price 0 only advances the sequence; then a gap resyncs by REST."""
    h = Harness()
    h.frame(l2(12, 14, bids=[("3988.00", "1", "12")]))       # older than the snapshot
    h.frame(l2(15, 19, asks=[("3988.59", "3", "16"), ("3988.61", "0", "19"),
                             ("3988.62", "8", "15")], bids=[("3988.50", "44", "18"),
                                                           ("0", "0", "17")]))
    assert h.book()["status"] != "live" and len(h.proto.rest_requests) == 1
    h.snapshot(16, bids=[["3988.51", "56"], ["3988.50", "15"], ["3988.49", "100"],
                         ["3988.48", "10"]],
               asks=[["3988.59", "3"], ["3988.60", "47"], ["3988.61", "32"], ["3988.62", "8"]])
    assert h.book()["status"] == "live"
    assert h.book()["asks"] == [["3988.59", "3"], ["3988.6", "47"], ["3988.62", "8"]]
    assert h.book()["bids"] == [["3988.51", "56"], ["3988.5", "44"], ["3988.49", "100"],
                                ["3988.48", "10"]]
    h.frame(l2(20, 20, asks=[("0", "0", "20")]))              # sequence only
    h.frame(l2(21, 22, bids=[("3988.52", "1", "21")], asks=[("3988.59", "0", "22")]))
    assert h.book()["bids"][0] == ["3988.52", "1"] and h.book()["asks"][0] == ["3988.6", "47"]
    h.frame(l2(21, 22, bids=[("3988.52", "9", "21")]))        # replayed: stale, ignored
    assert h.book()["bids"][0] == ["3988.52", "1"] and h.stats.gaps == 0
    h.frame(l2(24, 24, bids=[("3988.53", "1", "24")]))        # 23 missing
    assert h.stats.gaps == 1 and h.stats.resyncs == 1 and h.book()["status"] == "stale"
    h.frame(l2(25, 25, bids=[("3988.54", "2", "25")]))
    h.snapshot(24, bids=[["3988.53", "1"]], asks=[["3988.6", "47"]])
    assert h.book()["status"] == "live" and h.book()["bids"] == [["3988.54", "2"], ["3988.53", "1"]]
    assert h.stats.malformed == 0


def test_snapshot_older_than_the_stream_is_refetched():
    h = Harness()
    h.frame(l2(50, 51, bids=[("10", "1", "50"), ("11", "1", "51")]))
    h.snapshot(40, bids=[["9", "1"]], asks=[["12", "1"]])      # 41..49 unknown
    assert h.book()["status"] != "live" and h.stats.resyncs == 1
    assert len(h.proto.rest_requests) == 1
    h.frame(l2(52, 52, asks=[("12", "0", "52")]))
    h.snapshot(51, bids=[["11", "1"], ["10", "1"], ["9", "1"]], asks=[["13", "2"]])
    assert h.book()["status"] == "live" and h.book()["asks"] == [["13", "2"]]


def test_partial_snapshot_keeps_to_its_window():
    """A 100-level side may be cut short: changes beyond its worst price are dropped (no
    holes), and the book resyncs once the window runs nearly empty."""
    h = Harness()
    h.frame(l2(1, 1, bids=[("0", "0", "1")]))
    bids = [[f"{1000 - i}", "1"] for i in range(PARTIAL_LEVELS)]    # 1000 .. 901
    h.snapshot(1, bids=bids, asks=[["1001", "1"]])
    h.frame(l2(2, 3, bids=[("900", "5", "2"), ("950.5", "2", "3")]))   # 900: outside
    got = h.book()["bids"]
    assert ["900", "5"] not in got and ["950.5", "2"] in got and got[-1] == ["901", "1"]
    assert h.stats.resyncs == 0
    deletes = [(f"{1000 - i}", "0", str(4 + i)) for i in range(90)]
    h.frame(l2(4, 93, bids=deletes))
    assert h.stats.resyncs == 1 and h.book()["status"] == "stale"
    assert len(h.proto.rest_requests) == 1


def test_malformed_and_venue_frames():
    h = Harness()
    h.frame(l2(1, 1, bids=[("0", "0", "1")]))
    h.snapshot(1, bids=[["10", "1"]], asks=[["11", "1"]])
    h.frame(l2(2, 2, bids=[("10", "1")]))                     # no per-change sequence:
    assert h.stats.malformed == 0                              # not needed past the snapshot
    h.frame(l2(3, 3, bids=[("x1", "1", "3")]))                # bad number
    assert h.stats.malformed == 1 and h.stats.resyncs == 1
    h.frame({"type": "message", "subject": "trade.l2update", "data": {
        "symbol": "BTC-USDT", "sequenceStart": "4", "sequenceEnd": 4, "changes": {}}})
    assert h.stats.malformed == 2
    h.frame("{not json")
    h.frame({"id": "x", "type": "error", "code": 401, "data": "token is invalid"})
    assert h.proto.stats.malformed_frames == 2
    ignored = h.proto.stats.ignored_frames
    h.frame({"id": "1", "type": "ack"})
    h.frame({"id": "2", "type": "pong"})
    h.frame({"type": "message", "subject": "trade.ticker", "topic": "/market/ticker:BTC-USDT",
             "data": {}})
    assert h.proto.stats.ignored_frames == ignored + 3


def test_subscribes_after_welcome_and_token_parsing():
    h = Harness()
    assert h.proto.subscribe_messages(["BTC-USDT"]) == [] and not h.proto.outbox
    h.frame({"id": "abc", "type": "welcome"})
    sub = orjson.loads(h.proto.outbox.popleft())
    assert sub["type"] == "subscribe" and sub["topic"] == "/market/level2:BTC-USDT"
    assert sub["response"] is True
    tok = parse_token(b'{"code":"200000","data":{"token":"T","instanceServers":[{"endpoint":'
                      b'"wss://x/","encrypt":true,"protocol":"websocket","pingInterval":18000,'
                      b'"pingTimeout":10000}]}}')
    assert (tok.endpoint, tok.token, tok.ping_interval, tok.ping_timeout) == \
        ("wss://x/", "T", 18.0, 10.0)
    assert KuCoin.ws_url.startswith("wss://")               # class access: plain endpoint
    h.proto.handle_rest(RestRequest("", "http://x/api/v1/bullet-public", kind="token"),
                        orjson.dumps({"code": "200000", "data": {"token": "T2", "instanceServers":
                                      [{"endpoint": "wss://y/", "pingInterval": 1000}]}}), 0)
    assert h.proto.pre_connect_requests() == []
    url = h.proto.ws_url
    assert url.startswith("wss://y/?token=T2&connectId=") and h.proto.ping_interval == 0.8
    assert h.proto.token is None and h.proto.pre_connect_requests()[0].kind == "token"


# -- against the simulator ----------------------------------------------------------------
def test_kucoin_handshake_and_recovery_from_every_fault():
    async def scenario():
        venue = await KuCoinVenue(SYMBOLS, rate=120, seed=5, ping_interval_ms=300).start()
        # the venue really requires the token handshake
        async with websockets.connect(venue.ws_url + "/?connectId=1") as ws:
            err = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
            assert err["type"] == "error" and err["code"] == 401
        assert venue.rejected == 1
        spec = ExchangeSpec(KuCoin, SYMBOLS, rest_url=venue.rest_url)
        feed, stop, task = await start_feed(spec)
        try:
            await wait_for(lambda: feed.store is not None and all_live(feed, "kucoin", SYMBOLS),
                           20, "live")
            assert venue.tokens_issued >= 1 and venue.rejected == 1
            st = feed.stats["kucoin"]
            assert st.connects == 1 and st.disconnects == 0   # the token wait is no outage
            await wait_for(lambda: venue.events_sent > 150, 10, "traffic")
            await wait_for(lambda: venue.pings >= 1, 5, "pings")
            venue.drop_next("BTC-USDT")                      # a sequence gap
            await wait_for(lambda: st.sym("BTC-USDT").gaps >= 1, 5, "gap detected")
            await wait_for(lambda: all_live(feed, "kucoin", SYMBOLS), 10, "resynced")
            await venue.send_garbage()                       # a malformed frame
            await wait_for(lambda: st.malformed_frames >= 1, 5, "malformed counted")
            tokens = venue.tokens_issued
            await venue.disconnect_all()                     # a disconnect
            await wait_for(lambda: st.connects >= 2, 10, "reconnect")
            await wait_for(lambda: all_live(feed, "kucoin", SYMBOLS), 10, "live again")
            assert venue.tokens_issued > tokens and venue.rejected == 1
            await quiesce_and_compare(feed, venue, "kucoin", SYMBOLS)
            assert st.sym("BTC-USDT").gaps == 1 and st.sym("ETH-USDT").gaps == 0
            assert st.sym("BTC-USDT").resyncs >= 1
            assert st.malformed_frames == 1 and st.disconnects == 1
            assert st.totals()["levels"] > 300 and venue.snapshots_served >= 7
        finally:
            stop.set()
            await task
            await venue.stop()

    asyncio.run(scenario())


@pytest.mark.parametrize("path", ["/api/v1/market/orderbook/level2_100?symbol=BTC-USDT",
                                  "/api/v3/market/orderbook/level2?symbol=BTC-USDT"])
def test_rest_symbol_knows_both_snapshot_endpoints(path):
    h = Harness()
    assert h.proto.rest_symbol("https://api.kucoin.com" + path) == "BTC-USDT"
    assert h.proto.rest_symbol("https://api.kucoin.com/api/v1/bullet-public") is None
