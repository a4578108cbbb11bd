"""Hyperliquid (l2Book) against the loopback simulator: instruments over POST /info, books
live on the first full picture, app-level ping/pong, a lost message healed by the next
picture, an out-of-order (older ``time``) picture dropped and counted, a malformed frame,
a malformed book, a venue error, a disconnect and a stall; every book ends live and equal
to the venue's truth (its top 20 levels)."""

import asyncio

import aiohttp

from connectors.feed import ExchangeSpec
from connectors.hyperliquid import Hyperliquid, fetch_instruments
from simulator.hyperliquid import HyperliquidVenue
from tests.connectors.loopback import (
    all_live,
    books_match,
    quiesce_and_compare,
    stall_recovery_test,
    start_feed,
    wait_for,
)

SYMBOLS = ["BTC", "ETH", "SOL"]
EX = "hyperliquid"


async def instruments_from(venue) -> dict:
    async with aiohttp.ClientSession() as http:
        return await fetch_instruments(http, venue.rest_url)


def test_hyperliquid_recovers_from_every_fault():
    async def scenario():
        venue = await HyperliquidVenue(SYMBOLS, rate=150, seed=7).start()
        instruments = await instruments_from(venue)
        assert "OLDCOIN" not in instruments                  # delisted: skipped
        inst = instruments["ETH"]
        assert (inst.unified, inst.price_decimals, inst.size_decimals, inst.kind) == \
            ("ETH-USDC-PERP", 1, 5, "perp")
        spec = ExchangeSpec(Hyperliquid, SYMBOLS, ws_url=venue.ws_url + "/ws",
                            rest_url=venue.rest_url, instruments=instruments,
                            options={"ping_interval": 0.3})
        feed, stop, task = await start_feed(spec)
        try:
            await wait_for(lambda: feed.store is not None and all_live(feed, EX, SYMBOLS),
                           20, "live")
            st = feed.stats[EX]
            proto = feed.connections[0].protocol
            await wait_for(lambda: venue.events_sent > 150, 10, "traffic")
            await wait_for(lambda: proto.pongs >= 2 and proto.acks >= 3, 5, "pongs, acks")
            venue.drop_next("SOL", 3)                        # lost pictures: no trace
            await venue.send_stale_snapshot("BTC")           # time going backwards
            await wait_for(lambda: proto.out_of_order["BTC"] >= 1, 5, "stale dropped")
            assert st.reasons["out-of-order snapshot dropped"] >= 1
            assert feed.book(EX, "BTC").status == "live"     # the newer picture stays
            await venue.send_garbage()                       # a malformed frame
            await wait_for(lambda: st.malformed_frames >= 1, 5, "malformed counted")
            await venue.send_bad_book("ETH")                 # a malformed book
            await wait_for(lambda: st.sym("ETH").malformed >= 1, 5, "bad book counted")
            await wait_for(lambda: venue.counts["unsubscribes"] >= 1, 5, "resubscribe")
            await wait_for(lambda: all_live(feed, EX, SYMBOLS), 10, "resynced")
            await venue.send_error()                         # a venue error frame
            await wait_for(lambda: st.malformed_frames >= 2, 5, "error counted")
            await venue.disconnect_all()                     # a disconnect
            await wait_for(lambda: st.connects >= 2, 10, "reconnect")
            await wait_for(lambda: all_live(feed, EX, SYMBOLS), 10, "live again")
            await quiesce_and_compare(feed, venue, EX, SYMBOLS)
            # quiet venue: a stale, wrong picture must not replace the right one
            before = feed.book(EX, "SOL").to_dict()
            dropped = proto.out_of_order["SOL"]
            await venue.send_stale_snapshot("SOL")
            await wait_for(lambda: proto.out_of_order["SOL"] == dropped + 1, 5,
                           "quiet stale dropped")
            await asyncio.sleep(0.2)
            assert feed.book(EX, "SOL").to_dict() == before
            assert books_match(feed, venue, EX, SYMBOLS)
            assert st.sym("ETH").malformed == 1 and st.sym("ETH").resyncs >= 1
            assert st.sym("BTC").resyncs == 0 and st.sym("SOL").resyncs == 0
            assert st.totals()["gaps"] == 0                  # nothing carries a sequence
            assert st.malformed_frames == 2 and st.disconnects >= 1
            assert venue.counts["snapshots"] > 150 and st.totals()["snapshots"] > 150
        finally:
            stop.set()
            await task
            await venue.stop()

    asyncio.run(scenario())


def test_stall_detected_as_dead_link_and_recovered():
    """No frame for longer than the idle timeout: dead link, reconnect, resync."""
    stall_recovery_test(
        HyperliquidVenue, Hyperliquid, SYMBOLS[:1], instruments=instruments_from,
        spec_kwargs={"options": {"ping_interval": 0.5}},
        after_stall=lambda feed, venue: _assert(venue.counts["pings"] > venue.counts["pongs"]))


def _assert(ok: bool) -> None:
    assert ok
