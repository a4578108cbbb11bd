"""Shared driver for the loopback tests: a simulated venue and a live Feed against it."""

from __future__ import annotations

import asyncio
import time

from connectors.feed import ExchangeSpec, Feed


async def wait_for(cond, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def books_match(feed: Feed, venue, exchange: str, symbols) -> bool:
    for s in symbols:
        d = feed.book(exchange, s).to_dict()
        t = venue.truth(s)
        if d["status"] != "live" or d["bids"] != t["bids"] or d["asks"] != t["asks"]:
            return False
    return True


def all_live(feed: Feed, exchange: str, symbols) -> bool:
    return all(feed.book(exchange, s).status == "live" for s in symbols)


# A stall this long gives the 3 s idle timeout of start_feed a 2 s margin: a busy event
# loop (2 cores, other suites running) that fires the idle timer late must still find
# the venue silent, or no dead link is seen at all.
STALL = 5.0


async def start_feed(spec: ExchangeSpec, depth: int = 1000) -> tuple[Feed, asyncio.Event,
                                                                     asyncio.Task]:
    feed = Feed([spec], depth=depth,
                connection_options={"backoff": 0.05, "max_backoff": 0.2, "idle_timeout": 3.0})
    stop = asyncio.Event()
    task = asyncio.ensure_future(feed.run(stop))
    return feed, stop, task


async def quiesce_and_compare(feed, venue, exchange, symbols, timeout=10.0) -> None:
    """Stop the flow and wait until every book equals the venue's truth and is live."""
    venue.paused = True
    await wait_for(lambda: books_match(feed, venue, exchange, symbols), timeout,
                   f"{exchange} books to equal the simulator's")


def stall_recovery_test(venue_cls, protocol_cls, symbols, *, venue_kwargs=None,
                        spec_kwargs=None, instruments=None, after_stall=None,
                        check=None, stall: float = STALL) -> None:
    """The shared stall scenario: a live feed, then the venue sends nothing (no updates,
    no heartbeats, no pongs) for ``stall`` seconds, longer than the test feed's 3 s idle
    timeout.  The connector must call the link dead, reconnect, resync every book (a new
    snapshot after the reconnect, not just the old status) and end equal to the venue's
    truth.

    ``instruments``: an async callable(venue) giving the spec's instruments (venues whose
    instrument list is not a plain GET); ``after_stall(feed, venue)``: extra checks once
    the dead link was seen; ``check(feed, venue)``: extra checks at the end."""
    async def scenario():
        venue = await venue_cls(symbols, **(venue_kwargs or {"rate": 100})).start()
        ex = protocol_cls.exchange
        spec = ExchangeSpec(protocol_cls, symbols, ws_url=venue.ws_url,
                            rest_url=venue.rest_url, **(spec_kwargs or {}))
        if instruments is not None:
            spec.instruments = await instruments(venue)
        feed, stop, task = await start_feed(spec)
        try:
            await wait_for(lambda: feed.store is not None and all_live(feed, ex, symbols),
                           20, f"{ex} books live")
            st = feed.stats[ex]
            snapshots = {s: st.sym(s).snapshots for s in symbols}
            venue.stall(stall)
            await wait_for(lambda: st.disconnects >= 1, stall + 4, "stall detected")
            if after_stall is not None:
                after_stall(feed, venue)
            # "Live" right after the disconnect proves nothing: the stale status reaches
            # the book only when the writer thread drains it, so the old LIVE may still
            # show, and the book still equals the (stalled) truth.  Wait for the stall to
            # end and for a snapshot newer than the stall, then for live books.
            await wait_for(lambda: time.monotonic() > venue._stall_until, stall + 2,
                           "stall over")
            await wait_for(lambda: all(st.sym(s).snapshots > snapshots[s] for s in symbols),
                           10, f"{ex} snapshots after the reconnect")
            await wait_for(lambda: all_live(feed, ex, symbols), 10, f"{ex} live again")
            await quiesce_and_compare(feed, venue, ex, symbols)
            if check is not None:
                check(feed, venue)
        finally:
            stop.set()
            await task
            await venue.stop()

    asyncio.run(scenario())
