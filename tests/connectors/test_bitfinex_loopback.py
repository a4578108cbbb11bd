"""Bitfinex (websocket v2, ``book`` P0 with SEQ_ALL + CHECKSUM) against the loopback
simulator: instruments over REST, the snapshot sync, a connection sequence gap, a
corrupted checksum, a change the venue never sent (caught by the checksum alone), a
malformed frame, a malformed book update and a disconnect; each detected, counted and
repaired by resubscribing; every book ends live and equal to the venue's truth."""

import asyncio

from connectors.bitfinex import CHECKSUM, SEQ_ALL, Bitfinex
from connectors.feed import ExchangeSpec
from simulator.bitfinex import BitfinexVenue
from tests.connectors.loopback import all_live, quiesce_and_compare, start_feed, wait_for

SYMBOLS = ["tBTCUSD", "tETHUSD", "tSOLUSD"]


def test_bitfinex_recovers_from_every_fault():
    async def scenario():
        venue = await BitfinexVenue(SYMBOLS, rate=120, seed=3, heartbeat_interval=0.3).start()
        spec = ExchangeSpec(Bitfinex, SYMBOLS, ws_url=venue.ws_url, rest_url=venue.rest_url)
        feed, stop, task = await start_feed(spec)
        try:
            await wait_for(lambda: feed.store is not None and all_live(feed, "bitfinex",
                                                                       SYMBOLS), 20, "live")
            inst = spec.instruments["tETHUSD"]
            assert (inst.unified, inst.price_decimals, inst.size_decimals) == \
                ("ETH-USD", 10, 8)
            assert spec.instruments["tBTCF0:USTF0"].unified == "BTC-UST-PERP"
            proto = feed.connections[0].protocol
            assert proto.flags == SEQ_ALL | CHECKSUM
            st = feed.stats["bitfinex"]
            await wait_for(lambda: venue.events_sent > 100 and proto.checksums_ok > 50, 10,
                           "traffic and verified checksums")
            # 1. updates lost on the wire: the connection's sequence shows the gap
            venue.drop_next("tBTCUSD")
            await wait_for(lambda: st.sym("tBTCUSD").gaps >= 1, 5, "gap detected")
            await wait_for(lambda: venue.counts["unsubscribes"] >= 3, 5, "resubscribes")
            await wait_for(lambda: all_live(feed, "bitfinex", SYMBOLS), 10, "resynced")
            gaps = st.totals()["gaps"]
            # 2. a corrupted checksum
            venue.corrupt_next_checksum("tETHUSD")
            await wait_for(lambda: st.sym("tETHUSD").checksum_failures >= 1, 5, "bad cs")
            await wait_for(lambda: all_live(feed, "bitfinex", SYMBOLS), 10, "resynced 2")
            # 3. the truth changed silently: only the checksum can tell
            await venue.lose_unsequenced("tSOLUSD")
            await wait_for(lambda: st.sym("tSOLUSD").checksum_failures >= 1, 20, "silent")
            await wait_for(lambda: all_live(feed, "bitfinex", SYMBOLS), 10, "resynced 3")
            # 4. garbage, then a malformed book update
            await venue.send_garbage()
            await wait_for(lambda: st.malformed_frames >= 1, 5, "malformed counted")
            await venue.send_bad_update("tETHUSD")
            await wait_for(lambda: st.sym("tETHUSD").malformed >= 1, 5, "bad update counted")
            await wait_for(lambda: all_live(feed, "bitfinex", SYMBOLS), 10, "resynced 4")
            assert proto.heartbeats >= 1
            # 5. a disconnect
            await venue.disconnect_all()
            await wait_for(lambda: st.connects >= 2, 10, "reconnect")
            await wait_for(lambda: all_live(feed, "bitfinex", SYMBOLS), 10, "live again")
            await quiesce_and_compare(feed, venue, "bitfinex", SYMBOLS)
            assert gaps == 3 and st.totals()["gaps"] == 3   # one per book of the connection
            assert st.sym("tETHUSD").checksum_failures == 1
            assert st.sym("tSOLUSD").checksum_failures == 1
            assert st.sym("tBTCUSD").checksum_failures == 0
            assert st.sym("tETHUSD").malformed == 1 and st.malformed_frames == 1
            assert st.disconnects >= 1 and st.totals()["resyncs"] >= 6
            assert venue.counts["snapshots"] >= 2 * len(SYMBOLS) + 4
            assert venue.counts["rejected"] == 0
            assert st.totals()["levels"] > 300
        finally:
            stop.set()
            await task
            await venue.stop()

    asyncio.run(scenario())
