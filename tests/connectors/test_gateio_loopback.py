"""Gate.io against the loopback simulator: REST snapshot + diffs, then a forced gap, a
full-depth push, a malformed frame and a disconnect, each detected, counted and
repaired; app-level pings answered; every book ends equal to the truth."""

import asyncio

from connectors.feed import ExchangeSpec
from connectors.gateio import GateIO
from simulator.gateio import GateIOVenue
from tests.connectors.loopback import all_live, quiesce_and_compare, start_feed, wait_for

SYMBOLS = ["BTC_USDT", "ETH_USDT", "SOL_USDT"]


def test_gateio_recovers_from_every_fault():
    async def scenario():
        venue = await GateIOVenue(SYMBOLS, rate=150, seed=5).start()
        spec = ExchangeSpec(GateIO, SYMBOLS, ws_url=venue.ws_url + "/ws/v4/",
                            rest_url=venue.rest_url, options={"ping_interval": 0.2})
        feed, stop, task = await start_feed(spec)
        try:
            await wait_for(lambda: feed.store is not None and all_live(feed, "gateio",
                                                                       SYMBOLS), 20, "live")
            st = feed.stats["gateio"]
            proto = feed.connections[0].protocol
            assert venue.counts["rest_books"] == 3 and venue.counts["subscribes"] == 3
            await wait_for(lambda: venue.events_sent > 150, 10, "traffic")

            venue.drop_next("BTC_USDT")                      # a sequence gap
            await wait_for(lambda: st.sym("BTC_USDT").gaps >= 1, 5, "gap detected")
            await wait_for(lambda: venue.counts["rest_books"] >= 4, 5, "REST resync")
            await wait_for(lambda: all_live(feed, "gateio", SYMBOLS), 10, "resynced")

            await venue.push_full("ETH_USDT")                # the channel's full push
            await wait_for(lambda: proto.full_pushes >= 1, 5, "full push applied")

            await venue.send_garbage()                       # a malformed frame
            await wait_for(lambda: st.malformed_frames >= 1, 5, "malformed counted")
            assert all_live(feed, "gateio", SYMBOLS)         # garbage hurts no book

            await wait_for(lambda: proto.pongs >= 2 and venue.counts["pings"] >= 2, 5,
                           "spot.ping answered")

            await venue.disconnect_all()                     # a disconnect
            await wait_for(lambda: st.connects >= 2, 10, "reconnect")
            await wait_for(lambda: all_live(feed, "gateio", SYMBOLS), 10, "live again")
            await wait_for(lambda: venue.counts["rest_books"] >= 7, 5, "fresh snapshots")

            await quiesce_and_compare(feed, venue, "gateio", SYMBOLS)
            assert st.sym("BTC_USDT").gaps == 1
            assert st.sym("ETH_USDT").gaps == 0 and st.sym("SOL_USDT").gaps == 0
            assert st.sym("BTC_USDT").resyncs >= 1
            assert st.malformed_frames == 1 and st.disconnects >= 1
            assert st.totals()["malformed"] == 1 and st.totals()["dropped"] == 0
            assert st.totals()["levels"] > 300
        finally:
            stop.set()
            await task
            await venue.stop()

    asyncio.run(scenario())


def test_unknown_pair_is_a_clear_startup_error():
    from connectors.base import ConfigError

    async def scenario():
        venue = await GateIOVenue(SYMBOLS).start()
        spec = ExchangeSpec(GateIO, ["BTC_USDT", "NOPE_USDT"], ws_url=venue.ws_url,
                            rest_url=venue.rest_url)
        feed, stop, task = await start_feed(spec)
        try:
            try:
                await task
            except ConfigError as exc:
                assert "NOPE_USDT" in str(exc)
            else:
                raise AssertionError("no ConfigError for an unknown pair")
        finally:
            await venue.stop()

    asyncio.run(scenario())


def test_gateio_obu_resubscribes_on_a_gap():
    """The spot.obu dialect: full book on subscribe, U == last + 1, and a gap repaired
    by unsubscribe + subscribe (no REST)."""
    from connectors.gateio import GateIOObu

    async def scenario():
        venue = await GateIOVenue(SYMBOLS, rate=150, seed=7, obu=True).start()
        spec = ExchangeSpec(GateIOObu, SYMBOLS, ws_url=venue.ws_url, rest_url=venue.rest_url)
        feed, stop, task = await start_feed(spec)
        try:
            await wait_for(lambda: feed.store is not None and all_live(feed, "gateio",
                                                                       SYMBOLS), 20, "live")
            st = feed.stats["gateio"]
            await wait_for(lambda: venue.events_sent > 100, 10, "traffic")
            venue.drop_next("SOL_USDT")
            await wait_for(lambda: st.sym("SOL_USDT").gaps >= 1, 5, "gap detected")
            await wait_for(lambda: venue.counts["unsubscribes"] >= 1
                           and venue.counts["subscribes"] >= 4, 5, "resubscribed")
            await venue.send_garbage()
            await wait_for(lambda: st.malformed_frames >= 1, 5, "malformed counted")
            await venue.disconnect_all()
            await wait_for(lambda: st.connects >= 2, 10, "reconnect")
            await quiesce_and_compare(feed, venue, "gateio", SYMBOLS)
            assert st.sym("SOL_USDT").gaps == 1 and st.sym("BTC_USDT").gaps == 0
            assert venue.counts["rest_books"] == 0 and st.malformed_frames == 1
        finally:
            stop.set()
            await task
            await venue.stop()

    asyncio.run(scenario())
