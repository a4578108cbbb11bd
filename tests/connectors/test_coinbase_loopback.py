"""Coinbase Advanced Trade against the loopback simulator: subscription handshake,
snapshots, updates, heartbeats and the connection-wide sequence_num; a forced gap, a
crossed book, a malformed frame, a disconnect and a stall are each detected, counted
and repaired, and every book ends equal to the venue's truth."""

import asyncio

import orjson
import pytest

from connectors.coinbase import Coinbase
from connectors.feed import ExchangeSpec
from simulator.coinbase import CoinbaseVenue
from tests.connectors.loopback import (
    all_live,
    quiesce_and_compare,
    stall_recovery_test,
    start_feed,
    wait_for,
)

SYMBOLS = ["BTC-USD", "ETH-USD", "SOL-USD"]
EX = Coinbase.exchange


async def _live_feed(venue, symbols):
    spec = ExchangeSpec(Coinbase, symbols, ws_url=venue.ws_url, rest_url=venue.rest_url)
    feed, stop, task = await start_feed(spec)
    await wait_for(lambda: feed.store is not None and all_live(feed, EX, symbols), 20,
                   "books live")
    return feed, stop, task


def test_coinbase_recovers_from_every_fault():
    async def scenario():
        venue = await CoinbaseVenue(SYMBOLS, rate=150, seed=5).start()
        feed, stop, task = await _live_feed(venue, SYMBOLS)
        try:
            st = feed.stats[EX]
            proto = feed.connections[0].protocol
            # the handshake: one channel per message, heartbeats and level2
            first = venue.requests[:2]
            assert [r["channel"] for r in first] == ["heartbeats", "level2"]
            assert first[1]["product_ids"] == SYMBOLS and first[1]["type"] == "subscribe"
            await wait_for(lambda: venue.events_sent > 150 and proto.heartbeats >= 1, 10,
                           "traffic and a heartbeat")

            venue.drop_next("BTC-USD")          # a lost message: sequence_num jumps
            await wait_for(lambda: st.sym("BTC-USD").gaps >= 1, 5, "gap detected")
            await wait_for(lambda: all_live(feed, EX, SYMBOLS), 10, "resynced")
            # connection-wide counter: every book of the connection resynced, once
            assert [st.sym(s).gaps for s in SYMBOLS] == [1, 1, 1]
            resub = [r for r in venue.requests[2:] if r["channel"] == "level2"]
            assert [r["type"] for r in resub] == ["unsubscribe", "subscribe"]
            assert resub[1]["product_ids"] == SYMBOLS   # one batched resubscribe

            await venue.send_crossed("ETH-USD")     # a bid at the best ask
            await wait_for(lambda: st.sym("ETH-USD").crossed >= 1, 5, "crossed detected")
            await wait_for(lambda: all_live(feed, EX, SYMBOLS), 10, "uncrossed")

            await venue.send_garbage()              # a malformed frame
            await wait_for(lambda: st.malformed_frames >= 1, 5, "malformed counted")

            await venue.disconnect_all()            # a disconnect
            await wait_for(lambda: st.connects >= 2, 10, "reconnect")
            await wait_for(lambda: all_live(feed, EX, SYMBOLS), 10, "live again")
            await wait_for(lambda: venue.events_sent > 400, 10, "more traffic")

            await quiesce_and_compare(feed, venue, EX, SYMBOLS)
            assert st.malformed_frames == 1 and st.disconnects >= 1
            assert [st.sym(s).gaps for s in SYMBOLS] == [1, 1, 1]  # garbage is no gap
            assert st.sym("ETH-USD").crossed == 1 and st.sym("ETH-USD").resyncs >= 2
            assert st.reasons["sequence gap"] == 3 and st.reasons["crossed book"] == 1
            assert st.totals()["levels"] > 300
            assert venue.faults["dropped"] == 1 and venue.deadline_kicks == 0
        finally:
            stop.set()
            await task
            await venue.stop()

    asyncio.run(scenario())


def test_stall_detected_as_dead_link_and_recovered():
    """No frame for longer than the idle timeout: dead link, reconnect, resync."""
    stall_recovery_test(CoinbaseVenue, Coinbase, SYMBOLS[:1],
                        check=lambda feed, venue: _assert(feed.stats[EX].sym(SYMBOLS[0]).gaps == 0))


def test_quiet_books_stay_connected_on_heartbeats():
    """No order flow for longer than the feed's idle timeout: heartbeats (counted) keep
    the connection, and the books, alive."""
    async def scenario():
        venue = await CoinbaseVenue(SYMBOLS[:2], rate=50, heartbeat_interval=0.5).start()
        feed, stop, task = await _live_feed(venue, SYMBOLS[:2])
        try:
            venue.paused = True
            proto = feed.connections[0].protocol
            seen = proto.heartbeats
            await asyncio.sleep(4.0)          # > 3 s idle timeout of the test feed
            st = feed.stats[EX]
            assert st.disconnects == 0 and proto.heartbeats >= seen + 4
            assert all_live(feed, EX, SYMBOLS[:2])
            await quiesce_and_compare(feed, venue, EX, SYMBOLS[:2])
        finally:
            stop.set()
            await task
            await venue.stop()

    asyncio.run(scenario())


def test_simulator_enforces_the_documented_handshake():
    """The venue side of the contract the connector is tested against: a subscription
    must come within the deadline and name one channel."""
    import websockets

    async def scenario():
        venue = await CoinbaseVenue(SYMBOLS[:1], subscribe_deadline=1.0).start()
        try:
            async with websockets.connect(venue.ws_url) as ws:   # never subscribes
                with pytest.raises(websockets.ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 5)
            assert venue.deadline_kicks == 1
            async with websockets.connect(venue.ws_url) as ws:
                await ws.send(orjson.dumps({"type": "subscribe", "product_ids": SYMBOLS[:1],
                                            "channel": ["level2", "heartbeats"]}).decode())
                assert orjson.loads(await ws.recv())["type"] == "error"
                await ws.send(orjson.dumps({"type": "subscribe", "product_ids": SYMBOLS[:1],
                                            "channel": "level2"}).decode())
                msgs = [orjson.loads(await ws.recv()) for _ in range(2)]
                assert [m["channel"] for m in msgs] == ["subscriptions", "l2_data"]
                assert [m["sequence_num"] for m in msgs] == [0, 1]
                assert msgs[1]["events"][0]["type"] == "snapshot"
        finally:
            await venue.stop()

    asyncio.run(scenario())


def _assert(ok: bool) -> None:
    assert ok
