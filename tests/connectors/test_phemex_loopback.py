"""Phemex against the loopback simulator: instruments over REST (three product types,
two book channels), snapshots on subscribe, a lost update found by the periodic
snapshot check, a duplicated update (non-increasing sequence), a malformed frame, a
malformed book update, a disconnect, application pings; every book ends live and equal
to the venue's top 30 levels."""

import asyncio

from connectors.feed import ExchangeSpec
from connectors.phemex import Phemex
from simulator.phemex import PhemexVenue
from tests.connectors.loopback import all_live, quiesce_and_compare, start_feed, wait_for

SYMBOLS = ["sBTCUSDT", "ETHUSD", "SOLUSDT"]   # spot, coin-margined, USDT-margined


class FastPingPhemex(Phemex):
    ping_interval = 0.2


def test_phemex_recovers_from_every_fault():
    async def scenario():
        venue = await PhemexVenue(SYMBOLS, rate=150, seed=7, snapshot_interval=0.4).start()
        spec = ExchangeSpec(FastPingPhemex, SYMBOLS, ws_url=venue.ws_url,
                            rest_url=venue.rest_url)
        feed, stop, task = await start_feed(spec)
        try:
            await wait_for(lambda: feed.store is not None and all_live(feed, "phemex",
                                                                       SYMBOLS), 20, "live")
            got = {s: (spec.instruments[s].unified, spec.instruments[s].price_decimals,
                       spec.instruments[s].size_decimals, spec.instruments[s].channel)
                   for s in SYMBOLS}
            assert got == {"sBTCUSDT": ("BTC-USDT", 8, 8, "orderbook"),
                           "ETHUSD": ("ETH-USD-PERP", 4, 0, "orderbook"),
                           "SOLUSDT": ("SOL-USDT-PERP", 4, 5, "orderbook_p")}
            st = feed.stats["phemex"]
            proto = feed.connections[0].protocol
            await wait_for(lambda: venue.events_sent > 150, 10, "traffic")
            await wait_for(lambda: proto.periodic_snapshots >= 3, 5, "periodic snapshots")
            assert st.totals()["gaps"] == 0 and proto.snapshot_mismatches == 0

            venue.lose_update("sBTCUSDT")                  # a lost update: no sequence hole
            await wait_for(lambda: st.sym("sBTCUSDT").gaps >= 1, 5, "loss found")
            assert proto.snapshot_mismatches >= 1
            await wait_for(lambda: all_live(feed, "phemex", SYMBOLS), 10, "repaired")

            unsubs = venue.counts["unsubscribes"]
            await venue.send_duplicate("ETHUSD")           # sequence does not increase
            await wait_for(lambda: st.sym("ETHUSD").gaps >= 1, 5, "duplicate found")
            await wait_for(lambda: venue.counts["unsubscribes"] > unsubs, 5, "resubscribe")
            await wait_for(lambda: all_live(feed, "phemex", SYMBOLS), 10, "resynced")

            await venue.send_garbage()                     # a malformed frame
            await wait_for(lambda: st.malformed_frames >= 1, 5, "malformed counted")
            await venue.send_bad_update("SOLUSDT")         # a malformed book update
            await wait_for(lambda: st.sym("SOLUSDT").malformed >= 1, 5, "bad update")
            await wait_for(lambda: all_live(feed, "phemex", SYMBOLS), 10, "resynced again")
            await wait_for(lambda: venue.counts["pings"] >= 2 and proto.pongs >= 1, 5,
                           "pings answered")

            await venue.disconnect_all()                   # a disconnect
            await wait_for(lambda: st.connects >= 2, 10, "reconnect")
            await wait_for(lambda: all_live(feed, "phemex", SYMBOLS), 10, "live again")
            await quiesce_and_compare(feed, venue, "phemex", SYMBOLS)

            assert st.sym("sBTCUSDT").resyncs >= 1
            assert st.sym("ETHUSD").resyncs >= 1
            assert st.sym("SOLUSDT").malformed == 1 and st.sym("SOLUSDT").resyncs >= 1
            assert st.malformed_frames == 1 and st.disconnects >= 1
            assert venue.counts["snapshots"] >= 2 * len(SYMBOLS) + 1
            assert st.totals()["levels"] > 300
        finally:
            stop.set()
            await task
            await venue.stop()

    asyncio.run(scenario())
