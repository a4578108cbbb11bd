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
