"""HitBTC (API v3, ``orderbook/full``) against the loopback simulator: instruments over
REST, the websocket snapshot + sequence sync, a forced sequence gap (resubscribe), a
malformed frame, a malformed book update, a disconnect; every book ends live and equal
to the venue's truth."""

import asyncio

from connectors.feed import ExchangeSpec
from connectors.hitbtc import HitBTC
from simulator.hitbtc import HitBTCVenue
from tests.connectors.loopback import all_live, quiesce_and_compare, start_feed, wait_for

SYMBOLS = ["BTCUSDT", "ETHBTC", "SOLUSDT"]


def test_hitbtc_recovers_from_every_fault():
    async def scenario():
        venue = await HitBTCVenue(SYMBOLS, rate=150, seed=7).start()
        spec = ExchangeSpec(HitBTC, SYMBOLS, ws_url=venue.ws_url + "/api/3/ws/public",
                            rest_url=venue.rest_url)
        feed, stop, task = await start_feed(spec)
        try:
            await wait_for(lambda: feed.store is not None and all_live(feed, "hitbtc",
                                                                       SYMBOLS), 20, "live")
            inst = spec.instruments["ETHBTC"]
            assert (inst.unified, inst.price_decimals, inst.size_decimals) == \
                ("ETH-BTC", 4, 7)
            st = feed.stats["hitbtc"]
            await wait_for(lambda: venue.events_sent > 150, 10, "traffic")
            venue.drop_next("BTCUSDT")                        # a sequence gap
            await wait_for(lambda: st.sym("BTCUSDT").gaps >= 1, 5, "gap detected")
            await wait_for(lambda: venue.counts["unsubscribes"] >= 1, 5, "resubscribe")
            await wait_for(lambda: all_live(feed, "hitbtc", SYMBOLS), 10, "resynced")
            await venue.send_garbage()                        # a malformed frame
            await wait_for(lambda: st.malformed_frames >= 1, 5, "malformed counted")
            await venue.send_bad_update("ETHBTC")             # a malformed book update
            await wait_for(lambda: st.sym("ETHBTC").malformed >= 1, 5, "bad update counted")
            await wait_for(lambda: all_live(feed, "hitbtc", SYMBOLS), 10, "resynced again")
            await venue.disconnect_all()                      # a disconnect
            await wait_for(lambda: st.connects >= 2, 10, "reconnect")
            await wait_for(lambda: all_live(feed, "hitbtc", SYMBOLS), 10, "live again")
            await quiesce_and_compare(feed, venue, "hitbtc", SYMBOLS)
            assert st.sym("BTCUSDT").gaps == 1 and st.sym("BTCUSDT").resyncs >= 1
            assert st.sym("ETHBTC").malformed == 1 and st.sym("ETHBTC").resyncs >= 1
            assert st.sym("SOLUSDT").resyncs == 0 and st.sym("SOLUSDT").gaps == 0
            assert st.malformed_frames == 1 and st.disconnects >= 1
            assert venue.counts["rejected"] == 0
            assert venue.counts["snapshots"] >= 2 * len(SYMBOLS) + 2
            assert st.totals()["levels"] > 300
        finally:
            stop.set()
            await task
            await venue.stop()

    asyncio.run(scenario())
