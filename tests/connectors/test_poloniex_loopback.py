"""Poloniex v3 ``book_lv2`` against the loopback simulator: a forced gap, malformed
frames (no JSON, a bad level), a disconnect, and the keep-alive ping; each detected
and counted and every book ending equal to the venue's truth.  First, the lastId/id
chain rule and the resubscribe driven frame by frame."""

import asyncio

from connectors.base import Instrument
from connectors.feed import ExchangeSpec
from connectors.poloniex import Poloniex
from simulator.poloniex import PoloniexVenue
from tests.connectors.harness import ProtocolHarness
from tests.connectors.loopback import all_live, quiesce_and_compare, start_feed, wait_for

SYMBOLS = ["BTC_USDT", "ETH_USDT", "TRX_BTC"]


# -- the protocol alone, frame by frame ---------------------------------------------------
class Harness(ProtocolHarness):
    def __init__(self, symbol: str = "BTC_USDT") -> None:
        inst = {symbol: Instrument("poloniex", symbol, "BTC-USDT", 4, 6)}
        super().__init__(Poloniex, [symbol], 4, 6, depth=20, instruments=inst)


def lv2(action, last, seq, bids=(), asks=(), symbol="BTC_USDT"):
    entry = {"symbol": symbol, "createTime": 1, "asks": [list(a) for a in asks],
             "bids": [list(b) for b in bids], "lastId": last, "id": seq, "ts": 1700000000000}
    return {"channel": "book_lv2", "data": [entry], "action": action}


def test_chain_gap_resubscribe_and_old_tail():
    h = Harness()
    assert h.book()["status"] == "syncing"
    h.frame(lv2("update", 9, 10, [("100", "1")]))           # before any snapshot: dropped
    assert h.proto.stats.ignored_frames == 1 and h.stats.messages == 0
    h.frame(lv2("snapshot", 10, 11, [("100", "1"), ("99.5", "2")], [("101", "3")]))
    assert h.book()["status"] == "live"
    h.frame(lv2("update", 11, 13, [("100", "0")], [("100.5", "0.25")]))   # ids may skip
    h.frame(lv2("update", 13, 14, asks=[("101", "3.5")]))
    assert h.book()["bids"] == [["99.5", "2"]]
    assert h.book()["asks"] == [["100.5", "0.25"], ["101", "3.5"]] and h.book()["seq"] == 14
    assert h.stats.gaps == 0 and not h.proto.outbox
    h.frame(lv2("update", 15, 16, [("99", "1")]))           # 14 -> 15 lost: a gap
    assert h.stats.gaps == 1 and h.stats.resyncs == 1 and h.book()["status"] == "stale"
    assert h.sent() == [
        {"event": "unsubscribe", "channel": ["book_lv2"], "symbols": ["BTC_USDT"]},
        {"event": "subscribe", "channel": ["book_lv2"], "symbols": ["BTC_USDT"]}]
    h.frame(lv2("update", 16, 17, [("98", "1")]))           # old subscription's tail
    assert h.stats.gaps == 1 and h.book()["status"] == "stale"
    h.frame({"event": "unsubscribe", "channel": "book_lv2", "symbols": ["BTC_USDT"]})
    h.frame({"event": "subscribe", "channel": "book_lv2", "symbols": ["BTC_USDT"]})
    h.frame(lv2("snapshot", 29, 30, [("97", "1")], [("103", "1")]))
    h.frame(lv2("update", 30, 31, [("97.5", "2")]))
    assert h.book()["status"] == "live" and h.book()["bids"] == [["97.5", "2"], ["97", "1"]]
    assert h.stats.gaps == 1 and h.stats.resyncs == 1 and h.stats.snapshots == 2
    assert h.proto.stats.ignored_frames == 4


def test_malformed_input_is_counted_and_resynced():
    h = Harness()
    h.frame('{"event":"pong"}')
    assert h.proto.pongs == 1 and h.proto.ping_message() == '{"event":"ping"}'
    h.frame('{"event":"error","message":"Already subscribed"}')
    h.frame("[1, 2]")
    h.frame("not json")
    assert h.proto.stats.malformed_frames == 3 and h.stats.malformed == 0
    h.frame(lv2("snapshot", 0, 1, [("100", "1")], [("101", "1")]))
    h.frame(lv2("update", 1, 2, [("1x0", "1")]))            # unparsable price
    assert h.stats.malformed == 1 and h.book()["status"] == "stale"
    h.frame(lv2("snapshot", 4, 5, [("100", "1")], [("101", "1")]))
    assert h.book()["status"] == "live"
    h.frame(lv2("update", 5, 6, [("100", "1", "extra")]))   # not a [price, size] pair
    h.frame(lv2("snapshot", 6, 7, [("100", "1")], [("101", "1")]))
    h.frame(lv2("update", "x", 8, [("100", "2")]))          # lastId not an integer
    assert h.stats.malformed == 3 and h.stats.gaps == 0 and h.stats.resyncs == 3
    h.frame({"channel": "book_lv2", "action": "update"})     # no data
    assert h.proto.stats.malformed_frames == 4
    h.frame(lv2("update", 1, 2, symbol="NOPE_USDT"))
    assert h.proto.stats.unknown_symbol_frames == 1
    h.frame({"channel": "trades", "data": []})
    assert h.proto.stats.malformed_frames == 4


# -- against the simulated venue ------------------------------------------------------------
async def run_with(venue, scenario, **options) -> None:
    await venue.start()
    spec = ExchangeSpec(Poloniex, SYMBOLS, ws_url=venue.ws_url + "/ws/public",
                        rest_url=venue.rest_url, options=options)
    feed, stop, task = await start_feed(spec)
    try:
        # generous: the first run may compile the engine's kernels
        await wait_for(lambda: feed.store is not None and all_live(feed, "poloniex", SYMBOLS),
                       60, "books live")
        await scenario(feed, feed.stats["poloniex"])
    except AssertionError:   # shown by pytest on failure only
        if feed.store is not None:
            print("statuses:", {s: feed.book("poloniex", s).status for s in SYMBOLS})
            print("feed:", feed.summary(), feed.stats["poloniex"])
        print("venue:", venue.events_sent, venue.counts, venue.faults)
        raise
    finally:
        stop.set()
        await task
        await venue.stop()


def test_poloniex_recovers_from_gap_malformed_and_disconnect():
    venue = PoloniexVenue(SYMBOLS, rate=150, seed=3)
    btc, eth, trx = SYMBOLS

    async def scenario(feed, st):
        await wait_for(lambda: venue.events_sent > 400, 15, "traffic")
        venue.drop_next(btc)                                     # a lost update: a gap
        await wait_for(lambda: st.sym(btc).gaps >= 1, 10, "gap detected")
        await wait_for(lambda: all_live(feed, "poloniex", SYMBOLS), 15, "resubscribed")
        assert venue.counts["unsubscribes"] == 1 and venue.counts["errors"] == 0
        venue.malform_next(eth)                                  # a bad level
        await wait_for(lambda: st.sym(eth).malformed >= 1, 10, "bad level seen")
        await wait_for(lambda: all_live(feed, "poloniex", SYMBOLS), 15, "resubscribed")
        await venue.send_garbage()                               # a frame that is no JSON
        await wait_for(lambda: st.malformed_frames >= 1, 10, "garbage counted")
        await venue.disconnect_all()                             # an outage
        await wait_for(lambda: st.connects >= 2, 15, "reconnect")
        await wait_for(lambda: all_live(feed, "poloniex", SYMBOLS), 15, "live again")
        await quiesce_and_compare(feed, venue, "poloniex", SYMBOLS, timeout=15)
        assert [st.sym(s).gaps for s in SYMBOLS] == [1, 0, 0]
        assert [st.sym(s).malformed for s in SYMBOLS] == [0, 1, 0]
        assert st.malformed_frames == 1 and st.disconnects >= 1
        assert st.sym(btc).resyncs == 1 and st.sym(eth).resyncs == 1
        assert st.sym(trx).resyncs == 0
        assert all(st.sym(s).stale_events >= 1 for s in SYMBOLS)   # the disconnect
        assert venue.counts["unsubscribes"] == 2 and venue.counts["errors"] == 0
        assert sum(st.sym(s).snapshots for s in SYMBOLS) == venue.counts["snapshots"] == 8
        summary = feed.summary()["poloniex"]
        assert summary["messages"] > 400 and st.totals()["levels"] > 800
        for s in SYMBOLS:   # the window: never more than 20 levels a side
            t = venue.truth(s)
            assert 5 <= len(t["bids"]) <= 20 and 5 <= len(t["asks"]) <= 20

    asyncio.run(run_with(venue, scenario))


def test_poloniex_pings_keep_a_quiet_link_up():
    """The venue drops clients silent for 1 s here (30 s live); the client pings every
    0.3 s, so nothing is dropped; with the flow paused past the feed's 3 s idle
    timeout, the pongs alone keep the connection."""
    venue = PoloniexVenue(SYMBOLS, rate=60, seed=8, idle_timeout=1.0)

    async def scenario(feed, st):
        await wait_for(lambda: venue.events_sent > 150, 15, "traffic")
        await asyncio.sleep(1.5)
        assert venue.counts["idle_closes"] == 0
        await quiesce_and_compare(feed, venue, "poloniex", SYMBOLS, timeout=15)
        pings = venue.counts["pings"]
        await asyncio.sleep(3.5)
        assert venue.counts["pings"] >= pings + 5
        assert st.connects == 1 and st.disconnects == 0
        assert feed.connections[0].protocol.pongs >= 5
        venue.paused = False
        await wait_for(lambda: venue.events_sent > 300, 15, "more traffic")
        await quiesce_and_compare(feed, venue, "poloniex", SYMBOLS, timeout=15)
        summary = feed.summary()["poloniex"]
        assert summary["gaps"] == 0 and summary["resyncs"] == 0
        assert st.malformed_frames == 0 and venue.counts["errors"] == 0

    asyncio.run(run_with(venue, scenario, ping_interval=0.3))


def test_silent_client_is_dropped_by_the_venue_then_recovers():
    """Without pings (interval far beyond the venue's idle limit) the venue closes the
    link; the feed reconnects and resubscribes, and the books end right."""
    venue = PoloniexVenue(SYMBOLS, rate=60, seed=9, idle_timeout=1.0)

    async def scenario(feed, st):
        await wait_for(lambda: venue.counts["idle_closes"] >= 1, 15, "idle close")
        await wait_for(lambda: st.connects >= 2, 15, "reconnect")
        venue.idle_timeout = None
        await wait_for(lambda: all_live(feed, "poloniex", SYMBOLS), 15, "live again")
        await quiesce_and_compare(feed, venue, "poloniex", SYMBOLS, timeout=15)
        assert st.disconnects >= 1 and st.totals()["gaps"] == 0

    asyncio.run(run_with(venue, scenario, ping_interval=1000.0))
