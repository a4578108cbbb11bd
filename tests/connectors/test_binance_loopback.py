"""Binance spot and futures against the loopback simulator: snapshot + diffs, a forced
gap, a malformed frame, a disconnect, a stall; every book ends equal to the truth."""

import asyncio

import pytest

from connectors.binance import BinanceFutures, BinanceSpot
from connectors.feed import ExchangeSpec
from simulator.binance import BinanceFuturesVenue, BinanceSpotVenue
from tests.connectors.loopback import (
    all_live,
    quiesce_and_compare,
    stall_recovery_test,
    start_feed,
    wait_for,
)

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]


@pytest.mark.parametrize("venue_cls,proto", [(BinanceSpotVenue, BinanceSpot),
                                             (BinanceFuturesVenue, BinanceFutures)])
def test_binance_recovers_from_every_fault(venue_cls, proto):
    async def scenario():
        venue = await venue_cls(SYMBOLS, rate=150, seed=3).start()
        spec = ExchangeSpec(proto, SYMBOLS, ws_url=venue.ws_url + "/stream",
                            rest_url=venue.rest_url)
        feed, stop, task = await start_feed(spec)
        try:
            await wait_for(lambda: feed.store is not None and all_live(feed, proto.exchange,
                                                                       SYMBOLS), 20, "live")
            st = feed.stats[proto.exchange]
            await wait_for(lambda: venue.events_sent > 150, 10, "traffic")
            venue.drop_next("BTCUSDT")                      # a sequence gap
            await wait_for(lambda: st.sym("BTCUSDT").gaps >= 1, 5, "gap detected")
            await wait_for(lambda: all_live(feed, proto.exchange, SYMBOLS), 10, "resynced")
            await venue.send_garbage()                      # a malformed frame
            await wait_for(lambda: st.malformed_frames >= 1, 5, "malformed counted")
            await venue.disconnect_all()                    # a disconnect
            await wait_for(lambda: st.connects >= 2, 10, "reconnect")
            await wait_for(lambda: all_live(feed, proto.exchange, SYMBOLS), 10, "live again")
            await quiesce_and_compare(feed, venue, proto.exchange, SYMBOLS)
            assert st.sym("BTCUSDT").gaps == 1 and st.sym("ETHUSDT").gaps == 0
            assert st.sym("BTCUSDT").resyncs >= 1
            assert st.malformed_frames == 1 and st.disconnects >= 1
            assert st.totals()["levels"] > 300
        finally:
            stop.set()
            await task
            await venue.stop()

    asyncio.run(scenario())


def test_unknown_symbol_is_a_clear_startup_error():
    from connectors.base import ConfigError

    async def scenario():
        venue = await BinanceSpotVenue(SYMBOLS).start()
        spec = ExchangeSpec(BinanceSpot, ["BTCUSDT", "NOPEUSDT"], ws_url=venue.ws_url,
                            rest_url=venue.rest_url)
        feed, stop, task = await start_feed(spec)
        try:
            with pytest.raises(ConfigError, match="unknown symbol.*NOPEUSDT"):
                await task
        finally:
            await venue.stop()

    asyncio.run(scenario())


def test_stall_detected_as_dead_link_and_recovered():
    """No frame for longer than the idle timeout: dead link, reconnect, resync."""
    stall_recovery_test(BinanceSpotVenue, BinanceSpot, SYMBOLS[:1])
