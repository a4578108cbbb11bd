"""bitFlyer Lightning against the loopback simulator: instruments over REST, the
snapshot-channel sync (snapshot on subscribe and periodically), a lost update that
crosses the book (the only integrity signal without sequence numbers), a malformed
frame, a malformed board diff, a disconnect; every book ends live and equal to the
venue's truth."""

import asyncio

from connectors.bitflyer import BitFlyer
from connectors.feed import ExchangeSpec
from simulator.bitflyer import BitFlyerVenue
from tests.connectors.loopback import (
    all_live,
    quiesce_and_compare,
    stall_recovery_test,
    start_feed,
    wait_for,
)

SYMBOLS = ["BTC_JPY", "ETH_JPY", "FX_BTC_JPY"]


def test_bitflyer_recovers_from_every_fault():
    async def scenario():
        venue = await BitFlyerVenue(SYMBOLS, rate=150, seed=7, snapshot_interval=1.0).start()
        spec = ExchangeSpec(BitFlyer, SYMBOLS, ws_url=venue.ws_url + "/json-rpc",
                            rest_url=venue.rest_url)
        feed, stop, task = await start_feed(spec)
        try:
            await wait_for(lambda: feed.store is not None and all_live(feed, "bitflyer",
                                                                       SYMBOLS), 20, "live")
            inst = spec.instruments["FX_BTC_JPY"]
            assert (inst.unified, inst.kind, inst.price_decimals, inst.size_decimals) == \
                ("BTC-JPY-PERP", "perp", 8, 8)
            assert spec.instruments["ETH_JPY"].unified == "ETH-JPY"
            st = feed.stats["bitflyer"]
            await wait_for(lambda: venue.events_sent > 150, 10, "traffic")
            await venue.lose_delete_and_cross("BTC_JPY")       # a lost update shows
            await wait_for(lambda: st.sym("BTC_JPY").crossed >= 1, 5, "crossed detected")
            await wait_for(lambda: venue.counts["unsubscribes"] >= 1, 5, "resubscribe")
            await wait_for(lambda: all_live(feed, "bitflyer", SYMBOLS), 10, "resynced")
            await venue.send_garbage()                         # a malformed frame
            await wait_for(lambda: st.malformed_frames >= 1, 5, "malformed counted")
            await venue.send_bad_update("ETH_JPY")             # a malformed board diff
            await wait_for(lambda: st.sym("ETH_JPY").malformed >= 1, 5, "bad diff counted")
            await wait_for(lambda: all_live(feed, "bitflyer", SYMBOLS), 10, "resynced again")
            snaps = st.sym("FX_BTC_JPY").snapshots
            await wait_for(lambda: st.sym("FX_BTC_JPY").snapshots > snaps, 5, "periodic")
            await venue.disconnect_all()                       # a disconnect
            await wait_for(lambda: st.connects >= 2, 10, "reconnect")
            await wait_for(lambda: all_live(feed, "bitflyer", SYMBOLS), 10, "live again")
            await quiesce_and_compare(feed, venue, "bitflyer", SYMBOLS)
            assert st.sym("BTC_JPY").crossed == 1 and st.sym("BTC_JPY").resyncs >= 1
            assert st.sym("ETH_JPY").malformed == 1 and st.sym("ETH_JPY").resyncs >= 1
            assert st.sym("FX_BTC_JPY").resyncs == 0 and st.sym("FX_BTC_JPY").crossed == 0
            assert st.totals()["gaps"] == 0                    # no sequence to show one
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
    stall_recovery_test(BitFlyerVenue, BitFlyer, SYMBOLS[:1],
                        venue_kwargs={"rate": 100, "snapshot_interval": 0.5})
