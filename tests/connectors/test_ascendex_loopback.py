"""AscendEX against the loopback simulator: websocket snapshot + seqnum diffs, a forced
gap, a malformed frame, server pings answered, a disconnect; every book ends equal to
the truth."""

import asyncio

import pytest

from connectors.ascendex import AscendEX
from connectors.base import ConfigError
from connectors.feed import ExchangeSpec
from simulator.ascendex import AscendEXVenue
from tests.connectors.loopback import all_live, quiesce_and_compare, start_feed, wait_for

SYMBOLS = ["BTC/USDT", "ETH/USDT", "SRM/BTC"]


def test_ascendex_recovers_from_every_fault():
    async def scenario():
        venue = await AscendEXVenue(SYMBOLS, rate=150, seed=5, ping_interval=0.3).start()
        spec = ExchangeSpec(AscendEX, SYMBOLS, ws_url=venue.ws_url + "/1/api/pro/v1/stream",
                            rest_url=venue.rest_url)
        feed, stop, task = await start_feed(spec)
        try:
            await wait_for(lambda: feed.store is not None and all_live(feed, "ascendex",
                                                                       SYMBOLS), 20, "live")
            st = feed.stats["ascendex"]
            await wait_for(lambda: venue.events_sent > 150, 10, "traffic")
            await wait_for(lambda: venue.counts["pongs"] >= 1, 5, "pings answered")
            venue.drop_next("BTC/USDT")                     # a sequence gap
            await wait_for(lambda: st.sym("BTC/USDT").gaps >= 1, 5, "gap detected")
            await wait_for(lambda: all_live(feed, "ascendex", SYMBOLS), 10, "resynced")
            await venue.send_garbage()                      # a malformed frame
            await wait_for(lambda: st.malformed_frames >= 1, 5, "malformed counted")
            await venue.disconnect_all()                    # a disconnect
            await wait_for(lambda: st.connects >= 2, 10, "reconnect")
            await wait_for(lambda: all_live(feed, "ascendex", SYMBOLS), 10, "live again")
            await quiesce_and_compare(feed, venue, "ascendex", SYMBOLS)
            assert st.sym("BTC/USDT").gaps == 1 and st.sym("ETH/USDT").gaps == 0
            assert st.sym("BTC/USDT").resyncs >= 1
            assert st.malformed_frames == 1 and st.disconnects >= 1
            assert st.totals()["levels"] > 300
            assert venue.counts["errors"] == 0
            # subscribed and snapshotted twice (two connections) plus the gap resync
            assert venue.counts["snapshots"] >= 2 * len(SYMBOLS) + 1
        finally:
            stop.set()
            await task
            await venue.stop()

    asyncio.run(scenario())


def test_unknown_symbol_is_a_clear_startup_error():
    async def scenario():
        venue = await AscendEXVenue(SYMBOLS).start()
        spec = ExchangeSpec(AscendEX, ["BTC/USDT", "NOPE/USDT"], ws_url=venue.ws_url,
                            rest_url=venue.rest_url)
        feed, stop, task = await start_feed(spec)
        try:
            with pytest.raises(ConfigError, match="unknown symbol.*NOPE/USDT"):
                await task
        finally:
            await venue.stop()

    asyncio.run(scenario())
