"""Deribit (JSON-RPC, ``book.*.100ms``) against the loopback simulator: instruments over
REST, snapshot-on-subscribe, heartbeats answered, a dropped change (change_id gap), a
malformed frame, a malformed book change, a disconnect; each detected and counted, and
every book ends live and equal to the venue's truth."""

import asyncio

import orjson

from connectors.deribit import Deribit
from connectors.feed import ExchangeSpec
from simulator.deribit import DeribitVenue
from tests.connectors.loopback import all_live, quiesce_and_compare, start_feed, wait_for

SYMBOLS = ["BTC-PERPETUAL", "ETH-PERPETUAL", "SOL_USDC-PERPETUAL"]


def test_deribit_recovers_from_every_fault():
    async def scenario():
        venue = await DeribitVenue(SYMBOLS, rate=150, seed=7, heartbeat_interval=0.4).start()
        spec = ExchangeSpec(Deribit, SYMBOLS, ws_url=venue.ws_url + "/ws/api/v2",
                            rest_url=venue.rest_url)
        feed, stop, task = await start_feed(spec)
        try:
            await wait_for(lambda: feed.store is not None and all_live(feed, "deribit",
                                                                       SYMBOLS), 20, "live")
            inst = spec.instruments["SOL_USDC-PERPETUAL"]
            assert (inst.unified, inst.kind, inst.tick, inst.lot) == \
                ("SOL-USDC-PERP", "perp", "0.1", "0.1")
            assert (inst.price_decimals, inst.size_decimals) == (3, 3)
            assert spec.instruments["BTC-PERPETUAL"].unified == "BTC-USD-PERP"
            assert venue.counts["set_heartbeats"] == 1
            st = feed.stats["deribit"]
            proto = feed.connections[0].protocol
            await wait_for(lambda: venue.events_sent > 150, 10, "traffic")
            venue.drop_next("BTC-PERPETUAL")                  # a change_id gap
            await wait_for(lambda: st.sym("BTC-PERPETUAL").gaps >= 1, 5, "gap detected")
            await wait_for(lambda: venue.counts["unsubscribes"] >= 1, 5, "resubscribe")
            await wait_for(lambda: all_live(feed, "deribit", SYMBOLS), 10, "resynced")
            await venue.send_garbage()                        # a malformed frame
            await wait_for(lambda: st.malformed_frames >= 1, 5, "malformed counted")
            await venue.send_bad_update("ETH-PERPETUAL")      # a malformed book change
            await wait_for(lambda: st.sym("ETH-PERPETUAL").malformed >= 1, 5,
                           "bad change counted")
            await wait_for(lambda: all_live(feed, "deribit", SYMBOLS), 10, "resynced again")
            await wait_for(lambda: venue.counts["tests"] >= 2, 5, "test_requests answered")
            await venue.disconnect_all()                      # a disconnect
            await wait_for(lambda: st.connects >= 2, 10, "reconnect")
            await wait_for(lambda: all_live(feed, "deribit", SYMBOLS), 10, "live again")
            await quiesce_and_compare(feed, venue, "deribit", SYMBOLS)
            await asyncio.sleep(1.0)     # a few idle heartbeats: the link must stay up
            assert st.connects == 2 and venue.counts["heartbeat_kills"] == 0
            assert st.sym("BTC-PERPETUAL").gaps == 1 and st.sym("BTC-PERPETUAL").resyncs >= 1
            assert st.sym("ETH-PERPETUAL").malformed == 1
            assert st.sym("ETH-PERPETUAL").resyncs >= 1
            assert st.sym("SOL_USDC-PERPETUAL").resyncs == 0
            assert st.sym("SOL_USDC-PERPETUAL").gaps == 0
            assert st.totals()["gaps"] == 1 and st.totals()["crossed"] == 0
            assert st.malformed_frames == 1 and st.disconnects >= 1
            assert venue.counts["snapshots"] >= 2 * len(SYMBOLS) + 2
            assert venue.counts["errors"] == 0 and proto.test_requests >= 2
            assert st.totals()["levels"] > 300
        finally:
            stop.set()
            await task
            await venue.stop()

    asyncio.run(scenario())


def test_simulator_refuses_raw_and_kills_silent_clients():
    """The venue behaves as documented for what the connector avoids: ``raw`` needs
    authorization, and an unanswered test_request closes the connection."""
    from websockets.asyncio.client import connect

    async def scenario():
        venue = await DeribitVenue(SYMBOLS[:1], heartbeat_interval=0.2).start()
        try:
            async with connect(venue.ws_url) as ws:
                await ws.send(orjson.dumps({"jsonrpc": "2.0", "id": 1,
                                            "method": "public/subscribe", "params": {
                                                "channels": ["book.BTC-PERPETUAL.raw"]}}))
                answer = orjson.loads(await ws.recv())
                assert answer["id"] == 1 and answer["error"]["code"] == 13778
                await ws.send(orjson.dumps({"jsonrpc": "2.0", "id": 2,
                                            "method": "public/set_heartbeat",
                                            "params": {"interval": 10}}))
                assert orjson.loads(await ws.recv())["result"] == "ok"
                frames = []
                try:
                    async for f in ws:
                        frames.append(orjson.loads(f))
                except Exception:  # noqa: BLE001 - closed by the venue, as documented
                    pass
                assert frames == [{"jsonrpc": "2.0", "method": "heartbeat",
                                   "params": {"type": "test_request"}}]
            assert venue.counts["heartbeat_kills"] == 1
        finally:
            await venue.stop()

    asyncio.run(scenario())
