"""The recorded-session venue (simulator/recorded.py) end to end on loopback: the real
connector (in the recording's dialect) keeps every recorded book live across loop
boundaries, with no gap, no resync and no checksum failure, and its books equal both the
venue's own Decimal rebuild of the frames it sent and an independent rebuild of the
recording (tests/connectors/reference.py style) at the same point of the loop."""

from __future__ import annotations

import asyncio

import pytest

from connectors.feed import ExchangeSpec
from simulator.recorded import RecordedVenue
from tests.connectors.loopback import start_feed, wait_for
from tests.connectors.reference import need_recordings

# exchange id -> (recorded-pace multiplier, seconds of the recording looped): a loop of
# one to three seconds at a frame rate the connector keeps up with on a shared core
PLAN = {"binance": (30.0, None), "binance_futures": (30.0, None), "kraken": (20.0, None),
        "okx": (10.0, None), "coinbase": (4.0, 10.0), "poloniex": (15.0, None),
        "kraken_futures": (3.0, 8.0), "deribit": (20.0, None), "hitbtc": (15.0, None),
        "bitflyer": (15.0, None), "upbit": (15.0, None)}


def _books_equal_truth(feed, venue) -> bool:
    for s in venue.symbols:
        d = feed.book(venue.exchange, s).to_dict()
        t = venue.truth(s)
        if d["status"] != "live" or d["bids"] != t["bids"] or d["asks"] != t["asks"]:
            return False
    return True


async def run_loops(exchange: str, loops: int = 2, depth: int = 1000):
    """Feed against the looping venue until ``loops`` boundaries have passed and every
    book was live after the last one; then pause and compare.  Returns (feed, venue)."""
    need_recordings()
    speed, window = PLAN[exchange]
    venue = await RecordedVenue(exchange, speed=speed, depth=depth, window=window).start()
    spec = ExchangeSpec(venue.protocol_cls, venue.symbols, ws_url=venue.ws_url,
                        rest_url=venue.rest_url, instruments=venue.instruments)
    feed, stop, task = await start_feed(spec, depth=depth)
    try:
        await wait_for(lambda: venue.loops >= loops, 60, f"{loops} loops of {exchange}")
        # past the boundary, every book has had its snapshot (or bridge) again
        await wait_for(lambda: venue.streams[-1].position > len(venue.frames) // 2, 30,
                       "half of the next loop")
        venue.paused = True
        await wait_for(lambda: _books_equal_truth(feed, venue), 10,
                       f"{exchange} books to equal the venue's rebuild")
        return feed, venue
    finally:
        stop.set()
        await task
        await venue.stop()


@pytest.mark.parametrize("exchange", sorted(PLAN))
def test_books_live_across_loop_boundaries(exchange):
    feed, venue = asyncio.run(run_loops(exchange))
    st = feed.summary()[venue.exchange]
    assert venue.loops >= 2
    assert st["books"] == len(venue.symbols) > 0
    assert st["gaps"] == 0 and st["resyncs"] == 0, st
    assert st["checksum_failures"] == 0 and st["malformed"] == 0, st
    assert st["connects"] == 1, st        # one connection: no loop boundary reconnects
    if exchange in ("kraken", "okx"):
        assert st["checksums_verified"] > 0, st


def test_binance_futures_wire_sequence_continues_across_loops_with_times_of_now():
    """On the wire, at full speed: every depthUpdate's pu is the previous one's u for its
    symbol, through two loop boundaries (the bridging update included), and the event
    times read as now."""
    import time

    import orjson
    import websockets

    need_recordings()

    async def scenario():
        venue = await RecordedVenue("binance_futures", speed=0, window=8.0).start()
        last: dict[str, int] = {}
        checked = 0
        try:
            async with websockets.connect(venue.ws_url, max_size=2**24, close_timeout=0.5) as ws:
                await ws.send('{"method":"SUBSCRIBE","id":1,"params":[]}')
                while venue.loops < 2 or checked < 10:
                    msg = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
                    data = msg.get("data", {})
                    if data.get("e") != "depthUpdate":
                        continue
                    assert abs(data["E"] / 1000 - time.time()) < 30, data["E"]
                    s = data["s"]
                    if s in last:
                        assert data["pu"] == last[s], (s, data["pu"], last[s], venue.loops)
                        checked += 1
                    last[s] = data["u"]
        finally:
            await venue.stop()
        return checked

    assert asyncio.run(scenario()) > 100
