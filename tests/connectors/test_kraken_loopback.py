"""Kraken spot v2 against the loopback simulator (a corrupted checksum, malformed frames,
a disconnect; every book ends equal to the truth), the depth-scope rule driven event by
event, and unit tests of the exact number handling and the protocol's edges."""

import asyncio
import random
import zlib

import numpy as np
import pytest

from connectors.base import BookTarget, ConfigError
from connectors.feed import ExchangeSpec
from connectors.kraken import (
    Kraken,
    book_checksum,
    deletes_first,
    loads_exact,
    rfc3339_ns,
    v1_symbol,
    v2_symbol,
)
from engine.constants import H_CHECKSUM_OK, HDR_WORDS
from engine.kernels import S_WORDS
from engine.ring import RingPool, ring_drain
from engine.store import BookStore
from simulator.book import SimBook
from simulator.kraken import KrakenVenue, kraken_crc
from tests.connectors.loopback import all_live, quiesce_and_compare, start_feed, wait_for

SYMBOLS = ["BTC/USD", "ETH/USD", "DOGE/USD"]

# a book update for ETH/USD whose price is not a number: attributable to that book
BAD_ETH_UPDATE = ('{"channel":"book","type":"update","data":[{"symbol":"ETH/USD",'
                  '"bids":[{"price":"12x","qty":1}],"asks":[],"checksum":7}]}')


@pytest.fixture(scope="module", autouse=True)
def warm_kernels():
    """Compile the push and apply kernels before any event loop runs: a compile inside
    the loop (cold cache, busy machine) would stall the websockets for many seconds."""
    inst = Kraken.parse_instruments(asset_pairs({"XBT/USD": (1, 8)}))
    Harness(Kraken, inst).feed(snapshot("BTC/USD", [("1.1", "1")], [("1.2", "1")], 1, 8))


def test_kraken_recovers_from_every_fault():
    async def scenario():
        venue = await KrakenVenue(SYMBOLS, rate=150, seed=5, exponent_small=True).start()
        spec = ExchangeSpec(Kraken, SYMBOLS, ws_url=venue.ws_url + "/v2",
                            rest_url=venue.rest_url)
        feed, stop, task = await start_feed(spec)
        try:
            await wait_for(lambda: feed.store is not None and all_live(feed, "kraken",
                                                                       SYMBOLS), 30, "live")
            st = feed.stats["kraken"]
            await wait_for(lambda: feed.summary()["kraken"]["checksums_verified"] > 100, 20,
                           "verified traffic")

            venue.corrupt_next_checksum("BTC/USD")           # a wrong checksum
            await wait_for(lambda: st.sym("BTC/USD").checksum_failures >= 1, 10,
                           "checksum mismatch detected")
            await wait_for(lambda: venue.requests["unsubscribe"] >= 1, 5, "resubscribe")
            await wait_for(lambda: all_live(feed, "kraken", SYMBOLS), 10, "resynced")

            await venue.send_garbage()                      # a frame that is not JSON
            await wait_for(lambda: st.malformed_frames >= 1, 5, "garbage counted")
            await venue.send_garbage(BAD_ETH_UPDATE)        # a bad number in one book
            await wait_for(lambda: st.sym("ETH/USD").malformed >= 1, 5, "bad update counted")
            await wait_for(lambda: venue.requests["unsubscribe"] >= 2, 5, "ETH resubscribed")
            await wait_for(lambda: all_live(feed, "kraken", SYMBOLS), 10, "ETH live again")

            await venue.disconnect_all()                    # a disconnect
            await wait_for(lambda: st.connects >= 2, 10, "reconnect")
            await wait_for(lambda: all_live(feed, "kraken", SYMBOLS), 10, "live again")
            await quiesce_and_compare(feed, venue, "kraken", SYMBOLS)

            assert venue.faults["corrupted"] == 1
            assert st.sym("BTC/USD").checksum_failures == 1
            assert st.sym("ETH/USD").checksum_failures == 0
            assert st.sym("DOGE/USD").checksum_failures == 0
            assert st.sym("BTC/USD").resyncs >= 1 and st.sym("ETH/USD").resyncs >= 1
            assert st.sym("DOGE/USD").resyncs == 0
            assert st.malformed_frames == 1 and st.sym("ETH/USD").malformed == 1
            assert st.disconnects >= 1 and st.totals()["levels"] > 300
            assert st.sym("BTC/USD").snapshots >= 3      # first, resubscribe, reconnect
            summary = feed.summary()["kraken"]
            assert summary["checksum_failures"] == 1 and summary["checksums_verified"] > 100
        finally:
            stop.set()
            await task
            await venue.stop()

    asyncio.run(scenario())


def test_ping_and_heartbeats_are_answered_and_ignored():
    async def scenario():
        venue = await KrakenVenue(SYMBOLS[:1], rate=5, heartbeat=0.2).start()
        spec = ExchangeSpec(Kraken, SYMBOLS[:1], ws_url=venue.ws_url, rest_url=venue.rest_url)
        feed, stop, task = await start_feed(spec)
        try:
            await wait_for(lambda: feed.store is not None and all_live(feed, "kraken",
                                                                       SYMBOLS[:1]), 30)
            conn = feed.connections[0]
            conn.protocol.outbox.append(conn.protocol.ping_message())
            await wait_for(lambda: venue.requests["ping"] >= 1, 5, "ping sent")
            st = feed.stats["kraken"]
            await wait_for(lambda: st.ignored_frames >= 5, 5, "heartbeats")
            assert st.malformed_frames == 0 and st.sym(SYMBOLS[0]).resyncs == 0
        finally:
            stop.set()
            await task
            await venue.stop()

    asyncio.run(scenario())


# -- a protocol on a store, no network ------------------------------------------------------
class Harness:
    """A protocol writing to a one-ring store, drained after every frame (as in replay)."""

    def __init__(self, proto_cls, instruments, depth=1000):
        self.symbols = list(instruments)
        self.store = BookStore(len(self.symbols), depth)
        pool = RingPool(1, 1 << 14)
        self.ctl, self.data = pool.ctl[0], pool.data[0]
        targets = {}
        for i, s in enumerate(self.symbols):
            inst = instruments[s]
            self.store.configure(i, s, inst.price_decimals, inst.size_decimals)
            targets[s] = BookTarget(self.ctl, self.data, i, self.store.hdr)
        self.proto = proto_cls(instruments, targets)
        self.proto.on_connect()
        self.hist = np.zeros(0, np.int64)
        self.wstats = np.zeros(S_WORDS, np.int64)

    def feed(self, frame):
        self.proto.handle_frame(frame, 0)
        self.drain()

    def drain(self):
        s = self.store
        ring_drain(self.ctl, self.data, s.hdr, s.px, s.sz, 1 << 20, self.hist, self.wstats)
        self.proto.check_health()
        ring_drain(self.ctl, self.data, s.hdr, s.px, s.sz, 1 << 20, self.hist, self.wstats)

    def book(self, symbol):
        return self.store.book(self.symbols.index(symbol)).to_dict()

    def header_word(self, symbol, word):
        return int(self.store.hdr[self.symbols.index(symbol) * HDR_WORDS + word])


def asset_pairs(pairs):
    """An AssetPairs body: {wsname: (pair_decimals, lot_decimals)}."""
    import json

    return json.dumps({"error": [], "result": {
        w.replace("/", ""): {"altname": w.replace("/", ""), "wsname": w, "pair_decimals": p,
                             "lot_decimals": q} for w, (p, q) in pairs.items()}})


def snapshot(symbol, bids, asks, pdec, sdec, checksum=None):
    """A v2 snapshot with numbers written unquoted, exactly as given."""
    def side(levels):
        return ",".join(f'{{"price":{p},"qty":{q}}}' for p, q in levels)
    if checksum is None:
        checksum = book_checksum(asks, bids, pdec, sdec)
    return (f'{{"channel":"book","type":"snapshot","data":[{{"symbol":"{symbol}",'
            f'"bids":[{side(bids)}],"asks":[{side(asks)}],"checksum":{checksum}}}]}}')


def test_json_numbers_stay_exact():
    assert repr(float("12345678.123456789")) == "12345678.12345679"  # what a float does
    assert loads_exact('{"p":0.10000000001,"q":65000.1,"n":100,"e":1.5e-07}') == \
        {"p": "0.10000000001", "q": "65000.1", "n": "100", "e": "1.5e-07"}
    with pytest.raises(ValueError):
        loads_exact('{"p":NaN}')
    inst = Kraken.parse_instruments(asset_pairs({"XBT/USD": (11, 9)}))
    h = Harness(Kraken, inst)
    bids = [("65000.1", "0.000000001"), ("0.10000000001", "12345678.123456789")]
    asks = [("65000.2", "1.5e-07"), ("70000", "3")]
    h.feed(snapshot("BTC/USD", bids, asks, 11, 9))
    book = h.book("BTC/USD")
    assert book["status"] == "live"
    assert book["bids"] == [["65000.1", "0.000000001"], ["0.10000000001", "12345678.123456789"]]
    assert book["asks"] == [["65000.2", "0.00000015"], ["70000", "3"]]
    assert h.header_word("BTC/USD", H_CHECKSUM_OK) == 1  # the writer agreed


def test_checksum_recipe_matches_the_documented_example():
    # docs: ask 45285.2 / 0.00100000 contributes "452852100000"
    assert kraken_crc([("45285.2", "0.00100000")], []) == zlib.crc32(b"452852100000")
    assert book_checksum([["45285.2", "0.001"]], [], 1, 8) == zlib.crc32(b"452852100000")
    # asks ascending first, then bids descending, whatever order they are given in
    a, b = [["2.0", "1"], ["1.5", "2"]], [["1.0", "3"], ["1.2", "4"]]
    assert book_checksum(a, b, 1, 0) == zlib.crc32(b"152" + b"201" + b"124" + b"103")


def test_snapshot_with_a_wrong_checksum_never_reads_live():
    inst = Kraken.parse_instruments(asset_pairs({"XBT/USD": (1, 8)}))
    h = Harness(Kraken, inst)
    h.feed(snapshot("BTC/USD", [("100.1", "1")], [("100.2", "2")], 1, 8, checksum=12345))
    st = h.proto.stats.sym("BTC/USD")
    assert h.book("BTC/USD")["status"] == "stale"
    assert st.checksum_failures == 1 and st.resyncs == 1
    assert [m for m in h.proto.outbox if '"unsubscribe"' in m]  # resubscribing
    h.proto.outbox.clear()
    # updates of the old subscription are dropped until the new snapshot arrives
    h.feed('{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[],'
           '"asks":[{"price":100.3,"qty":1}],"checksum":1,'
           '"timestamp":"2024-01-02T03:04:05.123456Z"}]}')
    assert st.checksum_failures == 1 and h.book("BTC/USD")["asks"] == [["100.2", "2"]]
    h.feed(snapshot("BTC/USD", [("100.1", "1")], [("100.2", "2")], 1, 8))
    assert h.book("BTC/USD")["status"] == "live" and st.checksum_failures == 1
    assert not h.proto.outbox   # no second resubscribe


def test_depth_scope_rule_event_by_event():
    """Kraken's scope rule (cut to the depth after each message; no deletes for levels
    pushed out; levels coming into scope are sent) against the writer's per-level cut:
    thousands of simulated events at depth 16 (Kraken offers 10, 25, ...: the store
    holds multiples of 8), the book equal to the truth's top 16 and every checksum
    verified after each one."""

    class Kraken16(Kraken):
        depths = (16,)
        depth = 16

    venue = KrakenVenue(["BTC/USD"], seed=11, exponent_small=True)
    venue.books["BTC/USD"] = SimBook(random.Random(4), levels=22, max_levels=40)
    inst = Kraken16.parse_instruments(asset_pairs({"XBT/USD": (1, 8)}))
    h = Harness(Kraken16, inst, depth=16)
    h.feed(venue.snapshot_frame("BTC/USD", 16))
    book = venue.books["BTC/USD"]
    for _ in range(3000):
        old = venue.scope(book, 16)
        changes = book.step()
        if changes:
            h.feed(venue.update_frame("BTC/USD", changes, old, 16, venue.checksum("BTC/USD")))
            truth = venue.truth("BTC/USD")
            got = h.book("BTC/USD")
            assert got["bids"] == truth["bids"][:16] and got["asks"] == truth["asks"][:16]
    st = h.proto.stats.sym("BTC/USD")
    assert st.checksum_failures == 0 and st.resyncs == 0 and st.malformed == 0
    assert venue.republished > 20             # levels came back into scope
    assert h.header_word("BTC/USD", H_CHECKSUM_OK) > 2000


def test_deletes_first():
    q = lambda lv: lv[1]  # noqa: E731
    p = lambda lv: lv[0]  # noqa: E731
    lv = [["1", "5"], ["2", "0"], ["3", "1"], ["4", "0.000"]]
    assert deletes_first(lv, p, q) == [["2", "0"], ["4", "0.000"], ["1", "5"], ["3", "1"]]
    # a repeated price keeps only its last quantity
    assert deletes_first([["1", "5"], ["2", "1"], ["1", "0"]], p, q) == \
        [["1", "0"], ["2", "1"]]
    assert deletes_first([["1", "0"], ["1", "2"], ["3", "0"]], p, q) == \
        [["3", "0"], ["1", "2"]]
    same = [["1", "5"], ["2", "6"]]
    assert deletes_first(same, p, q) is same


def test_names_instruments_and_timestamps():
    assert v2_symbol("XBT/USD") == "BTC/USD" and v2_symbol("XDG/XBT") == "DOGE/BTC"
    assert v1_symbol("BTC/EUR") == "XBT/EUR" and v2_symbol("ETH/USD") == "ETH/USD"
    body = asset_pairs({"XBT/USD": (1, 8), "XDG/USD": (7, 8)})
    inst = Kraken.parse_instruments(body)
    assert set(inst) == {"BTC/USD", "DOGE/USD"}
    assert inst["BTC/USD"].unified == "BTC-USD" and inst["BTC/USD"].price_decimals == 1
    assert inst["DOGE/USD"].size_decimals == 8
    assert Kraken.native_from_recording("BTC-USD", inst) == "BTC/USD"
    with pytest.raises(ConfigError):
        Kraken.parse_instruments('{"error":["EGeneral:Unavailable"],"result":{}}')
    assert rfc3339_ns("1970-01-01T00:00:01.000000001Z") == 1_000_000_001
    assert rfc3339_ns("2023-10-06T17:35:55.440295Z") == 1696613755_440295000
    with pytest.raises(ValueError):
        rfc3339_ns("2023-10-06 17:35:55")


def test_bad_input_is_counted_never_fatal():
    inst = Kraken.parse_instruments(asset_pairs({"XBT/USD": (1, 8), "ETH/USD": (2, 8)}))
    h = Harness(Kraken, inst)
    h.feed(snapshot("BTC/USD", [("100.1", "1")], [("100.2", "2")], 1, 8))
    h.feed(snapshot("ETH/USD", [("10.01", "1")], [("10.02", "2")], 2, 8))
    st = h.proto.stats
    for frame in ("[1,2,3]", "not json", '{"channel":"book","type":"oops","data":[]}',
                  '{"channel":"book","type":"update","data":[5]}'):
        h.feed(frame)
    assert st.malformed_frames == 4
    h.feed(snapshot("SOL/USD", [("1", "1")], [("2", "1")], 0, 0))
    assert st.unknown_symbol_frames == 1
    # a book message missing its checksum, and one with a non-RFC 3339 timestamp
    h.feed('{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[],'
           '"asks":[]}]}')
    h.feed('{"channel":"book","type":"update","data":[{"symbol":"ETH/USD","bids":[],'
           '"asks":[],"checksum":1,"timestamp":17}]}')
    assert st.sym("BTC/USD").malformed == 1 and st.sym("ETH/USD").malformed == 1
    assert h.book("BTC/USD")["status"] == "stale" and h.book("ETH/USD")["status"] == "stale"
    # a rejected subscription leaves the book stale and is reported
    h.proto.outbox.clear()
    h.feed('{"error":"Currency pair not supported BTC/USD","method":"subscribe",'
           '"success":false,"symbol":"BTC/USD"}')
    assert st.reasons["subscription rejected"] == 1
    h.feed('{"channel":"heartbeat"}')
    h.feed('{"method":"pong","req_id":3}')
    with pytest.raises(ConfigError):
        Kraken(inst, {}, depth=7)
