"""Crypto.com Exchange v1 against the loopback simulator: instruments over REST, the
one-second wait before subscribing (the venue refuses earlier requests), snapshot +
u/pu deltas, heartbeats answered, a dropped update (a gap), a malformed frame, a
malformed book update, a disconnect; every fault is detected and counted and every
book ends live and equal to the venue's top-50 truth."""

import asyncio

from connectors.cryptocom import CryptoCom
from connectors.feed import ExchangeSpec
from simulator.cryptocom import CryptoComVenue
from tests.connectors.loopback import all_live, quiesce_and_compare, start_feed, wait_for

SYMBOLS = ["BTC_USD", "ETH_USD", "BTCUSD-PERP"]
EX = "cryptocom"


def test_cryptocom_recovers_from_every_fault():
    async def scenario():
        venue = await CryptoComVenue(SYMBOLS, rate=150, seed=7,
                                     heartbeat_interval=0.5).start()
        spec = ExchangeSpec(CryptoCom, SYMBOLS, ws_url=venue.ws_url + "/exchange/v1/market",
                            rest_url=venue.rest_url + "/exchange/v1")
        feed, stop, task = await start_feed(spec)
        try:
            await wait_for(lambda: feed.store is not None and all_live(feed, EX, SYMBOLS),
                           20, "live")
            assert venue.counts["early"] == 0 and venue.counts["rejected"] == 0
            spot, perp = spec.instruments["ETH_USD"], spec.instruments["BTCUSD-PERP"]
            assert (spot.unified, spot.kind, spot.price_decimals, spot.size_decimals) == \
                ("ETH-USD", "spot", 4, 6)
            assert (perp.unified, perp.kind) == ("BTC-USD-PERP", "perp")
            st = feed.stats[EX]
            await wait_for(lambda: venue.events_sent > 150, 10, "traffic")

            venue.drop_next("BTC_USD")                        # a lost update: a gap
            await wait_for(lambda: st.sym("BTC_USD").gaps >= 1, 10, "gap detected")
            await wait_for(lambda: venue.counts["unsubscribes"] >= 1, 5, "resubscribe")
            await wait_for(lambda: all_live(feed, EX, SYMBOLS), 10, "resynced")

            await venue.send_garbage()                        # a malformed frame
            await wait_for(lambda: st.malformed_frames >= 1, 5, "malformed counted")
            await venue.send_bad_update("ETH_USD")            # a malformed book update
            await wait_for(lambda: st.sym("ETH_USD").malformed >= 1, 5, "bad update")
            await wait_for(lambda: all_live(feed, EX, SYMBOLS), 10, "resynced again")

            proto = feed.connections[0].protocol
            await wait_for(lambda: venue.counts["heartbeat_answers"] >= 2, 5, "heartbeats")
            assert proto.heartbeats >= 2

            await venue.disconnect_all()                      # a disconnect
            await wait_for(lambda: st.connects >= 2, 10, "reconnect")
            await wait_for(lambda: all_live(feed, EX, SYMBOLS), 15, "live again")
            await quiesce_and_compare(feed, venue, EX, SYMBOLS, timeout=15)

            assert st.sym("BTC_USD").gaps == 1 and st.sym("BTC_USD").resyncs >= 1
            assert st.sym("ETH_USD").malformed == 1 and st.sym("ETH_USD").gaps == 0
            assert st.sym("BTCUSD-PERP").resyncs == 0 and st.sym("BTCUSD-PERP").gaps == 0
            assert st.malformed_frames == 1 and st.disconnects >= 1
            assert venue.counts["early"] == 0 and venue.counts["heartbeat_timeouts"] == 0
            assert venue.counts["snapshots"] >= 2 * len(SYMBOLS) + 2
            assert st.totals()["levels"] > 300
        finally:
            stop.set()
            await task
            await venue.stop()

    asyncio.run(scenario())


def test_unanswered_heartbeats_and_early_requests_are_refused_by_the_venue():
    """The simulator enforces what the connector must do: a client that subscribes at
    once is refused, one that ignores heartbeats is disconnected."""
    import contextlib

    import orjson
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    async def scenario():
        venue = await CryptoComVenue(SYMBOLS[:1], heartbeat_interval=1.0,
                                     connect_wait=0.3).start()
        try:
            sub = orjson.dumps({"id": 1, "method": "subscribe", "params": {
                "channels": ["book.BTC_USD.50"], "book_subscription_type": "SNAPSHOT_AND_UPDATE",
                "book_update_frequency": 10}}).decode()
            async with connect(venue.ws_url) as ws:
                await ws.send(sub)                            # too early
                reply = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
                assert reply["id"] == 1 and reply["code"] != 0
                await asyncio.sleep(0.4)
                await ws.send(sub)
                seen = []
                while len(seen) < 2:
                    msg = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
                    if msg.get("method") != "public/heartbeat":
                        seen.append(msg)
                assert seen[0] == {"id": 1, "method": "subscribe", "code": 0}
                assert seen[1]["result"]["channel"] == "book"
                # never answer heartbeats: the venue closes the link
                async def read_until_closed():
                    with contextlib.suppress(ConnectionClosed):
                        while True:
                            await ws.recv()

                await asyncio.wait_for(read_until_closed(), 8)
                assert venue.counts["heartbeat_timeouts"] >= 1
            assert venue.counts["early"] == 1
        finally:
            await venue.stop()

    asyncio.run(scenario())
