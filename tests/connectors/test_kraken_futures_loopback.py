"""Kraken Futures against the loopback simulator: instruments over REST, book snapshots
with per-product seq, then a forced gap, a malformed frame, a malformed book update and
a disconnect, each detected, counted and repaired by resubscribing; heartbeats arrive;
every book ends live and equal to the venue's truth."""

import asyncio

from connectors.feed import ExchangeSpec
from connectors.kraken_futures import KrakenFutures
from simulator.kraken_futures import KrakenFuturesVenue
from tests.connectors.loopback import (
    all_live,
    quiesce_and_compare,
    stall_recovery_test,
    start_feed,
    wait_for,
)

SYMBOLS = ["PF_XBTUSD", "PF_ETHUSD", "PF_SOLUSD"]
EX = "kraken_futures"


def test_kraken_futures_recovers_from_every_fault():
    async def scenario():
        venue = await KrakenFuturesVenue(SYMBOLS, rate=150, seed=11, heartbeat_interval=0.3,
                                         exponent_small=True).start()
        spec = ExchangeSpec(KrakenFutures, SYMBOLS, ws_url=venue.ws_url,
                            rest_url=venue.rest_url)
        feed, stop, task = await start_feed(spec)
        try:
            await wait_for(lambda: feed.store is not None and all_live(feed, EX, SYMBOLS),
                           20, "live")
            inst = spec.instruments["PF_XBTUSD"]
            assert (inst.unified, inst.price_decimals, inst.size_decimals) == \
                ("BTC-USD-PERP", 3, 6)
            assert "IN_XBTUSD" not in spec.instruments
            st = feed.stats[EX]
            proto = feed.connections[0].protocol
            assert venue.counts["snapshots"] == 3
            await wait_for(lambda: venue.events_sent > 150, 10, "traffic")

            venue.drop_next("PF_XBTUSD")                    # a sequence gap
            await wait_for(lambda: st.sym("PF_XBTUSD").gaps >= 1, 5, "gap detected")
            await wait_for(lambda: venue.counts["unsubscribes"] >= 1
                           and venue.counts["snapshots"] >= 4, 5, "resubscribed")
            await wait_for(lambda: all_live(feed, EX, SYMBOLS), 10, "resynced")

            await venue.send_garbage()                      # a malformed frame
            await wait_for(lambda: st.malformed_frames >= 1, 5, "malformed counted")
            assert all_live(feed, EX, SYMBOLS)              # garbage hurts no book

            await venue.send_bad_update("PF_ETHUSD")        # a malformed book update
            await wait_for(lambda: st.sym("PF_ETHUSD").malformed >= 1, 5, "bad update")
            await wait_for(lambda: venue.counts["snapshots"] >= 5, 5, "resubscribed")
            await wait_for(lambda: all_live(feed, EX, SYMBOLS), 10, "resynced again")
            await wait_for(lambda: proto.heartbeats >= 2, 5, "heartbeats")

            await venue.disconnect_all()                    # a disconnect
            await wait_for(lambda: st.connects >= 2, 10, "reconnect")
            await wait_for(lambda: venue.counts["snapshots"] >= 8, 10, "fresh snapshots")
            await wait_for(lambda: all_live(feed, EX, SYMBOLS), 10, "live again")

            await quiesce_and_compare(feed, venue, EX, SYMBOLS)
            assert st.sym("PF_XBTUSD").gaps == 1 and st.sym("PF_XBTUSD").resyncs >= 1
            assert st.sym("PF_ETHUSD").gaps == 0 and st.sym("PF_SOLUSD").gaps == 0
            assert st.sym("PF_ETHUSD").malformed == 1 and st.sym("PF_ETHUSD").resyncs >= 1
            assert st.sym("PF_SOLUSD").resyncs == 0
            assert st.malformed_frames == 1 and st.disconnects >= 1
            assert st.totals()["malformed"] == 2 and st.totals()["dropped"] == 0
            assert st.totals()["levels"] > 300
            assert venue.counts["exponent_numbers"] > 10    # 1.5E-3 style sizes parsed
            assert st.reasons["disconnect"] == len(SYMBOLS) * st.disconnects
        finally:
            stop.set()
            await task
            await venue.stop()

    asyncio.run(scenario())


def test_stall_detected_as_dead_link_and_recovered():
    """No frame for longer than the idle timeout: dead link, reconnect, resync."""
    stall_recovery_test(KrakenFuturesVenue, KrakenFutures, SYMBOLS[:1],
                        venue_kwargs={"rate": 100, "heartbeat_interval": 0.5})
