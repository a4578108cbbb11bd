"""Bitstamp against the loopback simulator: REST snapshot + microtimestamped diffs, an
out-of-order diff, a malformed frame, a malformed level, the venue's reconnect request
and a disconnect; each detected and counted, and every book ends equal to the truth."""

import asyncio

import numpy as np
import orjson

from connectors.base import BookTarget, ExchangeStats, Instrument, RestRequest
from connectors.bitstamp import Bitstamp
from connectors.feed import ExchangeSpec
from engine.kernels import S_WORDS
from engine.ring import RingPool, ring_drain
from engine.store import BookStore
from simulator.bitstamp import BitstampVenue
from tests.connectors.loopback import all_live, quiesce_and_compare, start_feed, wait_for

SYMBOLS = ["btcusd", "ethusd", "solusdt"]


def test_bitstamp_recovers_from_every_fault():
    async def scenario():
        venue = await BitstampVenue(SYMBOLS, rate=150, seed=5).start()
        spec = ExchangeSpec(Bitstamp, SYMBOLS, ws_url=venue.ws_url, rest_url=venue.rest_url)
        feed, stop, task = await start_feed(spec)
        try:
            await wait_for(lambda: feed.store is not None
                           and all_live(feed, "bitstamp", SYMBOLS), 20, "live")
            st = feed.stats["bitstamp"]
            await wait_for(lambda: venue.events_sent > 150, 10, "traffic")

            venue.reorder_next("btcusd")                  # stamps go back: a gap
            await wait_for(lambda: st.sym("btcusd").gaps >= 1, 5, "gap detected")
            await wait_for(lambda: all_live(feed, "bitstamp", SYMBOLS), 10, "resynced")

            await venue.send_garbage()                    # a malformed frame
            await wait_for(lambda: st.malformed_frames >= 1, 5, "malformed counted")

            await venue.send_bad_level("ethusd")          # a malformed level of one book
            await wait_for(lambda: st.sym("ethusd").malformed >= 1, 5, "bad level counted")
            await wait_for(lambda: all_live(feed, "bitstamp", SYMBOLS), 10, "resynced")

            await venue.request_reconnect()               # the venue's maintenance notice
            await wait_for(lambda: st.connects >= 2, 10, "reconnect on request")
            await wait_for(lambda: all_live(feed, "bitstamp", SYMBOLS), 10, "live again")

            await venue.disconnect_all()                  # a dropped connection
            await wait_for(lambda: st.connects >= 3, 10, "reconnect after outage")
            await wait_for(lambda: all_live(feed, "bitstamp", SYMBOLS), 10, "live again")

            await quiesce_and_compare(feed, venue, "bitstamp", SYMBOLS)
            assert st.sym("btcusd").gaps == 1
            assert st.sym("ethusd").gaps == 0 and st.sym("solusdt").gaps == 0
            assert st.sym("btcusd").resyncs >= 1 and st.sym("ethusd").resyncs >= 1
            assert st.sym("ethusd").malformed == 1 and st.malformed_frames == 1
            assert st.disconnects >= 2
            assert st.totals()["levels"] > 300
        finally:
            stop.set()
            await task
            await venue.stop()

    asyncio.run(scenario())


def test_heartbeats_keep_a_quiet_link_alive():
    """No diffs at all (quiet pairs are normal on Bitstamp): the heartbeat answers keep
    the link under the idle timeout, so the connection is never dropped."""
    async def scenario():
        venue = await BitstampVenue(SYMBOLS[:1], rate=0.0).start()
        spec = ExchangeSpec(Bitstamp, SYMBOLS[:1], ws_url=venue.ws_url,
                            rest_url=venue.rest_url,  # the test feed idles out after 3 s
                            options={"ping_interval": 0.5})
        feed, stop, task = await start_feed(spec)
        try:
            await wait_for(lambda: feed.store is not None
                           and all_live(feed, "bitstamp", SYMBOLS[:1]), 20, "live")
            await asyncio.sleep(4.5)
            assert venue.heartbeats >= 2
            st = feed.stats["bitstamp"]
            assert st.disconnects == 0 and st.connects == 1
            await quiesce_and_compare(feed, venue, "bitstamp", SYMBOLS[:1])
        finally:
            stop.set()
            await task
            await venue.stop()

    asyncio.run(scenario())


# -- the sync rule, frame by frame (no network) -------------------------------------------

class Harness:
    """One btcusd book fed by a Bitstamp protocol; ``book()`` drains the ring first."""

    def __init__(self) -> None:
        self.store = BookStore(1, 64)
        self.pool = RingPool(1, 1 << 10)
        self.store.configure(0, "bitstamp:btcusd", 2, 8, 64)
        inst = {"btcusd": Instrument("bitstamp", "btcusd", "BTC-USD", 2, 8)}
        target = BookTarget(self.pool.ctl[0], self.pool.data[0], 0, self.store.hdr)
        self.proto = Bitstamp(inst, {"btcusd": target}, ExchangeStats("bitstamp"))

    def book(self) -> dict:
        ring_drain(self.pool.ctl[0], self.pool.data[0], self.store.hdr, self.store.px,
                   self.store.sz, 1 << 16, np.zeros(0, np.int64), np.zeros(S_WORDS, np.int64))
        return self.store.book(0).to_dict()


def _diff(mt: int, bids=(), asks=()) -> str:
    return orjson.dumps({"event": "data", "channel": "diff_order_book_btcusd",
                         "data": {"timestamp": str(mt // 10**6), "microtimestamp": str(mt),
                                  "bids": [list(b) for b in bids],
                                  "asks": [list(a) for a in asks]}}).decode()


def test_snapshot_rule_and_out_of_order_diffs():
    h = Harness()
    proto = h.proto
    proto.on_connect()
    (req,) = proto.rest_requests
    assert req.url == "https://www.bitstamp.net/api/v2/order_book/btcusd/"
    assert proto.rest_symbol(req.url) == "btcusd"
    assert proto.rest_symbol("https://www.bitstamp.net/api/v2/order_book/btcusd") == "btcusd"
    proto.handle_frame(_diff(100, bids=[("10.00", "1.00000000")]), 0)   # before snapshot
    proto.handle_frame(_diff(200, bids=[("10.00", "2.00000000")]), 0)   # == snapshot
    proto.handle_frame(_diff(300, asks=[("11.00", "3.00000000")]), 0)   # applied
    snap = {"timestamp": "0", "microtimestamp": "200",
            "bids": [["10.00", "2.00000000"], ["9.50", "1.00000000"]], "asks": []}
    proto.handle_rest(req, orjson.dumps(snap), 0)
    book = h.book()
    assert book["status"] == "live"
    assert book["bids"] == [["10", "2"], ["9.5", "1"]] and book["asks"] == [["11", "3"]]
    proto.handle_frame(_diff(250, bids=[("9.50", "0.00000000")]), 0)    # went back: gap
    assert proto.stats.sym("btcusd").gaps == 1
    assert h.book()["status"] == "stale"
    assert [r.symbol for r in proto.rest_requests] == ["btcusd", "btcusd"]


def test_snapshot_older_than_the_stream_is_refetched():
    h = Harness()
    proto = h.proto
    proto.on_connect()
    req = proto.rest_requests.popleft()
    proto.handle_frame(_diff(500, bids=[("10.00", "1.00000000")]), 0)
    snap = {"timestamp": "0", "microtimestamp": "400", "bids": [], "asks": []}
    proto.handle_rest(req, orjson.dumps(snap), 0)
    assert proto.stats.reasons["snapshot older than the buffered stream"] == 1
    assert h.book()["status"] != "live"
    assert isinstance(proto.rest_requests[-1], RestRequest)


def test_bad_input_is_counted_never_raised():
    h = Harness()
    proto = h.proto
    proto.on_connect()
    for frame in ("[1,2]", "not json", '{"event":"data","channel":"diff_order_book_btcusd"}',
                  _diff(1).replace('"1"', '"x1"'),
                  '{"event":"bts:error","channel":"","data":{"message":"bad"}}'):
        proto.handle_frame(frame, 0)
    st = proto.stats
    assert st.malformed_frames + st.sym("btcusd").malformed == 5
    proto.handle_frame('{"event":"bts:request_reconnect","channel":"","data":""}', 0)
    assert proto.reconnect_requested
    proto.handle_frame('{"event":"bts:error","channel":"diff_order_book_btcusd",'
                       '"data":{"message":"x"}}', 0)
    assert '"bts:subscribe"' in proto.outbox[-1]     # the channel is asked for again
