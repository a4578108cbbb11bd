"""MEXC spot against the loopback simulator: protobuf diff depth + REST snapshots, then a
forced version gap, a malformed depth frame for one book, garbage text and binary
frames, and a disconnect, each detected, counted and repaired; PING answered; every
book ends equal to the truth."""

import asyncio

from connectors.base import ConfigError
from connectors.feed import ExchangeSpec
from connectors.mexc import MEXC
from simulator.mexc import MEXCVenue
from tests.connectors.loopback import all_live, quiesce_and_compare, start_feed, wait_for

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]


def test_mexc_recovers_from_every_fault():
    async def scenario():
        venue = await MEXCVenue(SYMBOLS, rate=150, seed=11).start()
        spec = ExchangeSpec(MEXC, SYMBOLS, ws_url=venue.ws_url + "/ws",
                            rest_url=venue.rest_url, options={"ping_interval": 0.2})
        feed, stop, task = await start_feed(spec)
        try:
            await wait_for(lambda: feed.store is not None and all_live(feed, "mexc", SYMBOLS),
                           20, "live")
            st = feed.stats["mexc"]
            proto = feed.connections[0].protocol
            assert venue.counts["rest_books"] == 3 and venue.counts["subscribes"] == 3
            assert proto.acks == 1                       # one SUBSCRIPTION for all three
            await wait_for(lambda: venue.events_sent > 150, 10, "traffic")

            venue.drop_next("BTCUSDT")                   # a version gap
            await wait_for(lambda: st.sym("BTCUSDT").gaps >= 1, 5, "gap detected")
            await wait_for(lambda: venue.counts["rest_books"] >= 4, 5, "REST resync")
            await wait_for(lambda: all_live(feed, "mexc", SYMBOLS), 10, "resynced")

            await venue.send_bad_depth("ETHUSDT")        # a broken frame for one book
            await wait_for(lambda: st.sym("ETHUSDT").malformed >= 1, 5, "bad depth counted")
            await wait_for(lambda: venue.counts["rest_books"] >= 5, 5, "ETH resync")
            await wait_for(lambda: all_live(feed, "mexc", SYMBOLS), 10, "ETH live again")

            await venue.send_garbage()                   # bad JSON text
            await venue.send_bad_binary()                # bad protobuf
            await wait_for(lambda: st.malformed_frames >= 2, 5, "malformed counted")
            assert all_live(feed, "mexc", SYMBOLS)       # neither names a book

            await wait_for(lambda: proto.pongs >= 2 and venue.counts["pings"] >= 2, 5,
                           "PING answered")

            await venue.disconnect_all()                 # a disconnect
            await wait_for(lambda: st.connects >= 2, 10, "reconnect")
            await wait_for(lambda: all_live(feed, "mexc", SYMBOLS), 10, "live again")
            await wait_for(lambda: venue.counts["rest_books"] >= 8, 5, "fresh snapshots")

            await quiesce_and_compare(feed, venue, "mexc", SYMBOLS)
            assert st.sym("BTCUSDT").gaps == 1
            assert st.sym("ETHUSDT").gaps == 0 and st.sym("SOLUSDT").gaps == 0
            assert st.sym("BTCUSDT").resyncs >= 1 and st.sym("ETHUSDT").resyncs >= 1
            assert st.sym("ETHUSDT").malformed == 1 and st.malformed_frames == 2
            assert st.totals()["malformed"] == 3 and st.totals()["dropped"] == 0
            assert st.disconnects >= 1
            assert st.totals()["levels"] > 300
        finally:
            stop.set()
            await task
            await venue.stop()

    asyncio.run(scenario())


def test_unknown_symbol_is_a_clear_startup_error():
    async def scenario():
        venue = await MEXCVenue(SYMBOLS).start()
        spec = ExchangeSpec(MEXC, ["BTCUSDT", "NOPEUSDT"], ws_url=venue.ws_url,
                            rest_url=venue.rest_url)
        feed, stop, task = await start_feed(spec)
        try:
            try:
                await task
            except ConfigError as exc:
                assert "NOPEUSDT" in str(exc)
            else:
                raise AssertionError("no ConfigError for an unknown symbol")
        finally:
            await venue.stop()

    asyncio.run(scenario())


def test_more_than_30_symbols_use_a_second_connection():
    """The venue rejects a 31st subscription on one connection; the feed never asks."""
    symbols = [f"S{i:04d}USDT" for i in range(31)]

    async def scenario():
        venue = await MEXCVenue(symbols, rate=5, seed=2).start()
        spec = ExchangeSpec(MEXC, symbols, ws_url=venue.ws_url, rest_url=venue.rest_url)
        feed, stop, task = await start_feed(spec)
        try:
            await wait_for(lambda: feed.store is not None and all_live(feed, "mexc", symbols),
                           20, "live")
            assert len(feed.connections) == 2 and venue.counts["rejected"] == 0
            await quiesce_and_compare(feed, venue, "mexc", symbols)
        finally:
            stop.set()
            await task
            await venue.stop()

    asyncio.run(scenario())
