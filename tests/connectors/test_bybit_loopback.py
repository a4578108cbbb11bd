"""Bybit v5 against the loopback simulator: subscribe + ack + snapshot, deltas in ``u``
order, app-level ping/pong, then a forced gap, a u=1 restart snapshot, a garbage frame,
a delta with a bad price and a disconnect; each is detected and counted, and after
quiescing every book equals the venue's truth."""

import asyncio

from connectors.bybit import Bybit, BybitInverse, BybitSpot
from connectors.feed import ExchangeSpec
from simulator.bybit import BybitInverseVenue, BybitSpotVenue, BybitVenue
from tests.connectors.loopback import all_live, quiesce_and_compare, start_feed, wait_for

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]


async def _stop(stop, task, venue) -> None:
    stop.set()
    await task
    await venue.stop()


def test_bybit_linear_recovers_from_every_fault():
    async def scenario():
        venue = await BybitVenue(SYMBOLS, rate=150, seed=7).start()
        spec = ExchangeSpec(Bybit, SYMBOLS, ws_url=venue.ws_url + "/v5/public/linear",
                            rest_url=venue.rest_url, options={"ping_interval": 0.3})
        feed, stop, task = await start_feed(spec)
        try:
            await wait_for(lambda: feed.store is not None and all_live(feed, "bybit", SYMBOLS),
                           20, "live")
            st = feed.stats["bybit"]
            proto = feed.connections[0].protocol
            assert venue.requests["subscribe"] == st.connects   # 3 topics, one request each
            await wait_for(lambda: venue.events_sent > 150, 20, "traffic")
            await wait_for(lambda: proto.pongs >= 1 and venue.pings >= 1, 20, "ping/pong")

            venue.drop_next("BTCUSDT")                       # a sequence gap
            await wait_for(lambda: st.sym("BTCUSDT").gaps >= 1, 20, "gap detected")
            await wait_for(lambda: all_live(feed, "bybit", SYMBOLS), 20, "resynced")
            # one subscribe per connection, plus the resubscribe after the gap
            assert venue.requests["unsubscribe"] == 1
            assert venue.requests["subscribe"] == st.connects + 1

            await venue.restart("ETHUSDT")                   # u starts over at 1
            await wait_for(lambda: proto.restarts["ETHUSDT"] == 1, 20, "restart seen")
            await wait_for(lambda: st.sym("ETHUSDT").messages > 0
                           and feed.book("bybit", "ETHUSDT").header()["seq"] > 1, 5,
                           "deltas after the restart")
            assert st.sym("ETHUSDT").gaps == 0 and st.sym("ETHUSDT").resyncs == 0

            await venue.send_garbage()                       # not JSON
            await wait_for(lambda: st.malformed_frames >= 1, 20, "garbage counted")
            await venue.send_bad_delta("SOLUSDT")            # JSON, but a bad price
            await wait_for(lambda: st.sym("SOLUSDT").malformed >= 1, 20, "bad delta counted")
            await wait_for(lambda: all_live(feed, "bybit", SYMBOLS), 20, "resynced again")

            await venue.disconnect_all()                     # a disconnect
            await wait_for(lambda: st.connects >= 2, 20, "reconnect")
            await wait_for(lambda: all_live(feed, "bybit", SYMBOLS), 20, "live again")
            await quiesce_and_compare(feed, venue, "bybit", SYMBOLS, 20)

            assert st.sym("BTCUSDT").gaps == 1 and st.sym("BTCUSDT").resyncs == 1
            assert st.sym("ETHUSDT").gaps == 0 and st.sym("SOLUSDT").gaps == 0
            assert st.sym("SOLUSDT").malformed == 1 and st.sym("SOLUSDT").resyncs == 1
            assert proto.restarts["ETHUSDT"] == 1 and sum(proto.restarts.values()) == 1
            assert st.malformed_frames == 1 and st.disconnects >= 1
            assert st.unknown_symbol_frames == 0 and sum(venue.rejections.values()) == 0
            assert st.totals()["levels"] > 300
        finally:
            await _stop(stop, task, venue)

    asyncio.run(scenario())


def test_bybit_spot_subscribes_in_batches_of_ten_and_resyncs():
    symbols = [f"C{i}USDT" for i in range(23)]

    async def scenario():
        venue = await BybitSpotVenue(symbols, rate=20, seed=11).start()
        spec = ExchangeSpec(BybitSpot, symbols, ws_url=venue.ws_url + "/v5/public/spot",
                            rest_url=venue.rest_url)
        feed, stop, task = await start_feed(spec)
        try:
            await wait_for(lambda: feed.store is not None
                           and all_live(feed, "bybit_spot", symbols), 20, "live")
            st = feed.stats["bybit_spot"]
            assert venue.requests["subscribe"] == 3 * st.connects   # <= 10 topics a request
            assert sum(venue.rejections.values()) == 0
            await wait_for(lambda: st.totals()["messages"] > 100, 20, "traffic")
            venue.drop_next("C5USDT")
            await wait_for(lambda: st.sym("C5USDT").gaps == 1, 20, "gap detected")
            await wait_for(lambda: all_live(feed, "bybit_spot", symbols), 20, "resynced")
            await quiesce_and_compare(feed, venue, "bybit_spot", symbols, 20)
            assert sum(st.sym(s).gaps for s in symbols) == 1
            assert feed.book("bybit_spot", "C0USDT").size_decimals == 6
        finally:
            await _stop(stop, task, venue)

    asyncio.run(scenario())


def test_bybit_inverse_books_equal_the_truth():
    symbols = ["BTCUSD", "ETHUSD"]

    async def scenario():
        venue = await BybitInverseVenue(symbols, rate=100, seed=5).start()
        spec = ExchangeSpec(BybitInverse, symbols, ws_url=venue.ws_url + "/v5/public/inverse",
                            rest_url=venue.rest_url)
        feed, stop, task = await start_feed(spec)
        try:
            await wait_for(lambda: feed.store is not None
                           and all_live(feed, "bybit_inverse", symbols), 20, "live")
            await wait_for(lambda: venue.events_sent > 100, 20, "traffic")
            await quiesce_and_compare(feed, venue, "bybit_inverse", symbols, 20)
            st = feed.stats["bybit_inverse"]
            assert st.totals()["gaps"] == 0 and st.malformed_frames == 0
        finally:
            await _stop(stop, task, venue)

    asyncio.run(scenario())
