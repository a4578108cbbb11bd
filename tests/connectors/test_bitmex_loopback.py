"""BitMEX (current ``orderBookL2`` dialect: arbitrary ids, prices on every row) against
the loopback simulator: instruments over REST, partial + id-keyed diffs, a lost insert
(an update for an id the book never had: the one gap BitMEX lets a client see), a
malformed frame, a malformed book row, a disconnect; every book ends live and equal to
the venue's truth."""

import asyncio

from connectors.bitmex import BitMEX
from connectors.feed import ExchangeSpec
from simulator.bitmex import BitMEXVenue
from tests.connectors.loopback import all_live, quiesce_and_compare, start_feed, wait_for

SYMBOLS = ["XBTUSD", "ETHUSD", "SOLUSDT"]


def test_bitmex_recovers_from_every_fault():
    async def scenario():
        venue = await BitMEXVenue(SYMBOLS, rate=150, seed=7).start()
        spec = ExchangeSpec(BitMEX, SYMBOLS, ws_url=venue.ws_url + "/realtime",
                            rest_url=venue.rest_url, options={"ping_idle": 0.3})
        feed, stop, task = await start_feed(spec)
        try:
            await wait_for(lambda: feed.store is not None and all_live(feed, "bitmex",
                                                                       SYMBOLS), 20, "live")
            inst = spec.instruments["XBTUSD"]
            assert (inst.unified, inst.price_decimals, inst.size_decimals) == \
                ("BTC-USD-PERP", 4, 0)
            st = feed.stats["bitmex"]
            await wait_for(lambda: venue.events_sent > 150, 10, "traffic")
            await venue.lose_insert("XBTUSD")                  # a lost message shows
            await wait_for(lambda: st.sym("XBTUSD").gaps >= 1, 5, "gap detected")
            await wait_for(lambda: venue.counts["unsubscribes"] >= 1, 5, "resubscribe")
            await wait_for(lambda: all_live(feed, "bitmex", SYMBOLS), 10, "resynced")
            await venue.send_garbage()                         # a malformed frame
            await wait_for(lambda: st.malformed_frames >= 1, 5, "malformed counted")
            await venue.send_bad_update("ETHUSD")              # a malformed book row
            await wait_for(lambda: st.sym("ETHUSD").malformed >= 1, 5, "bad row counted")
            await wait_for(lambda: all_live(feed, "bitmex", SYMBOLS), 10, "resynced again")
            venue.paused = True                                # silence: pings go out
            await wait_for(lambda: venue.counts["pings"] >= 1, 5, "ping")
            await wait_for(lambda: feed.connections[0].protocol.pongs >= 1, 5, "pong")
            venue.paused = False
            await venue.disconnect_all()                       # a disconnect
            await wait_for(lambda: st.connects >= 2, 10, "reconnect")
            await wait_for(lambda: all_live(feed, "bitmex", SYMBOLS), 10, "live again")
            await wait_for(lambda: venue.events_sent > 400, 10, "more traffic")
            await quiesce_and_compare(feed, venue, "bitmex", SYMBOLS)
            assert st.sym("XBTUSD").gaps == 1 and st.sym("XBTUSD").resyncs >= 1
            assert st.sym("ETHUSD").malformed == 1 and st.sym("ETHUSD").resyncs >= 1
            assert st.sym("SOLUSDT").resyncs == 0 and st.sym("SOLUSDT").gaps == 0
            assert st.totals()["crossed"] == 0
            assert st.malformed_frames == 1 and st.disconnects >= 1
            assert venue.counts["partials"] >= 2 * len(SYMBOLS) + 2
            assert st.totals()["levels"] > 300
        finally:
            stop.set()
            await task
            await venue.stop()

    asyncio.run(scenario())
