"""Bithumb (v1 websocket) against the loopback simulator: instruments over REST, whole
books per message, a lost message (healed by the next book), a replayed old book
(dropped by timestamp), a crossed book on a quiet market (resync by resubscription), a
malformed frame, a malformed book, a disconnect; every book ends live and equal to the
venue's top N."""

import asyncio

from connectors.bithumb import Bithumb
from connectors.feed import ExchangeSpec
from simulator.bithumb import BithumbVenue
from tests.connectors.loopback import (
    all_live,
    quiesce_and_compare,
    stall_recovery_test,
    start_feed,
    wait_for,
)

SYMBOLS = ["KRW-BTC", "KRW-ETH", "KRW-XRP"]


def test_bithumb_recovers_from_every_fault():
    async def scenario():
        venue = await BithumbVenue(SYMBOLS, rate=150, seed=7).start()
        spec = ExchangeSpec(Bithumb, SYMBOLS, ws_url=venue.ws_url + "/websocket/v1",
                            rest_url=venue.rest_url)
        feed, stop, task = await start_feed(spec)
        try:
            await wait_for(lambda: feed.store is not None and all_live(feed, "bithumb",
                                                                       SYMBOLS), 20, "live")
            assert spec.instruments["KRW-ETH"].unified == "ETH-KRW"
            st = feed.stats["bithumb"]
            proto = feed.connections[0].protocol
            await wait_for(lambda: venue.events_sent > 150, 10, "traffic")
            venue.drop_next("KRW-BTC")                          # a lost message
            await wait_for(lambda: venue.faults["dropped"] >= 1, 5, "drop")
            await venue.replay_stale("KRW-ETH")                 # an old book replayed
            await wait_for(lambda: proto.out_of_order >= 1, 5, "old book dropped")
            # a crossed book on a quiet market (busy, the next book would replace it):
            # the health check sees it, resyncs, and the resubscription's snapshots fix it
            venue.paused = True
            requests, snapshots = venue.counts["requests"], venue.counts["snapshots"]
            await venue.send_crossed("KRW-BTC")
            await wait_for(lambda: st.sym("KRW-BTC").crossed >= 1, 5, "crossed detected")
            await wait_for(lambda: venue.counts["requests"] > requests, 5, "resubscribe")
            await wait_for(lambda: all_live(feed, "bithumb", SYMBOLS), 10, "resynced")
            assert venue.counts["snapshots"] >= snapshots + len(SYMBOLS)
            venue.paused = False
            await venue.send_garbage()                          # a malformed frame
            await wait_for(lambda: st.malformed_frames >= 1, 5, "malformed counted")
            await venue.send_bad_update("KRW-XRP")              # a malformed book
            await wait_for(lambda: st.sym("KRW-XRP").malformed >= 1, 5, "bad book counted")
            await wait_for(lambda: all_live(feed, "bithumb", SYMBOLS), 10, "resynced again")
            await venue.disconnect_all()                        # a disconnect
            await wait_for(lambda: st.connects >= 2, 10, "reconnect")
            await wait_for(lambda: all_live(feed, "bithumb", SYMBOLS), 10, "live again")
            await quiesce_and_compare(feed, venue, "bithumb", SYMBOLS)
            assert proto.out_of_order == 1 and st.sym("KRW-ETH").resyncs == 0
            assert st.sym("KRW-BTC").crossed == 1 and st.sym("KRW-BTC").resyncs >= 1
            assert st.sym("KRW-XRP").malformed == 1 and st.sym("KRW-XRP").resyncs >= 1
            assert st.totals()["gaps"] == 0                     # none can be seen
            assert st.malformed_frames == 1 and st.disconnects >= 1
            assert venue.counts["rejected"] == 0
            assert st.totals()["levels"] > 300
        finally:
            stop.set()
            await task
            await venue.stop()

    asyncio.run(scenario())


def test_stall_detected_as_dead_link_and_recovered():
    """No frame for longer than the idle timeout: dead link, reconnect, resync."""
    stall_recovery_test(BithumbVenue, Bithumb, SYMBOLS[:1])
