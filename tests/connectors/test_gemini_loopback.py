"""Gemini (market data v2) against the loopback simulator: instruments over REST, the
snapshot-in-first-message sync, a lost update that crosses the book (v2's only
integrity signal), a malformed frame, a malformed book update, a disconnect; every
book ends live and equal to the venue's truth."""

import asyncio

from connectors.feed import ExchangeSpec
from connectors.gemini import Gemini
from simulator.gemini import GeminiVenue
from tests.connectors.loopback import (
    all_live,
    quiesce_and_compare,
    stall_recovery_test,
    start_feed,
    wait_for,
)

SYMBOLS = ["BTCUSD", "ETHUSD", "SOLUSD"]


def test_gemini_recovers_from_every_fault():
    async def scenario():
        venue = await GeminiVenue(SYMBOLS, rate=150, seed=5, heartbeat_interval=0.5).start()
        spec = ExchangeSpec(Gemini, SYMBOLS, ws_url=venue.ws_url + "/v2/marketdata",
                            rest_url=venue.rest_url)
        feed, stop, task = await start_feed(spec)
        try:
            await wait_for(lambda: feed.store is not None and all_live(feed, "gemini",
                                                                       SYMBOLS), 20, "live")
            inst = spec.instruments["ETHUSD"]
            assert (inst.unified, inst.price_decimals, inst.size_decimals) == \
                ("ETH-USD", 4, 8)
            st = feed.stats["gemini"]
            await wait_for(lambda: venue.events_sent > 150, 10, "traffic")
            await venue.lose_delete_and_cross("BTCUSD")       # a lost update shows
            await wait_for(lambda: st.sym("BTCUSD").crossed >= 1, 5, "crossed detected")
            await wait_for(lambda: venue.counts["unsubscribes"] >= 1, 5, "resubscribe")
            await wait_for(lambda: all_live(feed, "gemini", SYMBOLS), 10, "resynced")
            await venue.send_garbage()                        # a malformed frame
            await wait_for(lambda: st.malformed_frames >= 1, 5, "malformed counted")
            await venue.send_bad_update("ETHUSD")             # a malformed book update
            await wait_for(lambda: st.sym("ETHUSD").malformed >= 1, 5, "bad update counted")
            await wait_for(lambda: all_live(feed, "gemini", SYMBOLS), 10, "resynced again")
            await wait_for(lambda: feed.connections[0].protocol.heartbeats >= 2, 5,
                           "heartbeats")
            await venue.disconnect_all()                      # a disconnect
            await wait_for(lambda: st.connects >= 2, 10, "reconnect")
            await wait_for(lambda: all_live(feed, "gemini", SYMBOLS), 10, "live again")
            await quiesce_and_compare(feed, venue, "gemini", SYMBOLS)
            assert st.sym("BTCUSD").crossed == 1 and st.sym("BTCUSD").resyncs >= 1
            assert st.sym("ETHUSD").malformed == 1 and st.sym("ETHUSD").resyncs >= 1
            assert st.sym("SOLUSD").resyncs == 0 and st.sym("SOLUSD").crossed == 0
            assert st.totals()["gaps"] == 0                   # v2 cannot show one
            assert st.malformed_frames == 1 and st.disconnects >= 1
            assert venue.counts["snapshots"] >= 2 * len(SYMBOLS) + 2
            assert st.totals()["levels"] > 300
        finally:
            stop.set()
            await task
            await venue.stop()

    asyncio.run(scenario())


def test_stall_detected_as_dead_link_and_recovered():
    """No frame for longer than the idle timeout: dead link, reconnect, resync."""
    stall_recovery_test(GeminiVenue, Gemini, SYMBOLS[:1],
                        venue_kwargs={"rate": 100, "heartbeat_interval": 0.5})
