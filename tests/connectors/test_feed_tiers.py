"""A live Feed in every engine mode (tiers, one pool, the single writer) against the
Binance loopback simulator: books equal the venue's truth; with tiers the busiest book
is promoted, quiet ones demoted, and the monitoring snapshot shows it."""

import asyncio

import pytest

from connectors.base import ConfigError
from connectors.binance import BinanceSpot
from connectors.feed import ExchangeSpec, Feed
from engine.classify import HOT, Thresholds
from engine.tiers import TierConfig
from simulator.binance import BinanceSpotVenue
from tests.connectors.loopback import all_live, quiesce_and_compare, wait_for

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"]


async def _feed(venue, tiers):
    spec = ExchangeSpec(BinanceSpot, SYMBOLS, ws_url=venue.ws_url + "/stream",
                        rest_url=venue.rest_url)
    feed = Feed([spec], depth=200, tiers=tiers,
                connection_options={"backoff": 0.05, "max_backoff": 0.2, "idle_timeout": 3.0})
    stop = asyncio.Event()
    return feed, stop, asyncio.ensure_future(feed.run(stop))


@pytest.mark.parametrize("mode", ["tiers", "pool", "single"])
def test_feed_books_equal_truth_in_every_mode(mode):
    async def scenario():
        venue = await BinanceSpotVenue(SYMBOLS, rate=200, seed=5,
                                       activity=[8.0, 1.0, 0.1, 0.1]).start()
        cfg = TierConfig(mode=mode, rebalance_interval=0.2,
                         thresholds=Thresholds(hot_up=300, hot_down=150, warm_up=40,
                                               warm_down=10))
        feed, stop, task = await _feed(venue, cfg)
        try:
            await wait_for(lambda: feed.running and all_live(feed, "binance", SYMBOLS), 60,
                           "live")
            await wait_for(lambda: venue.events_sent > 400, 10, "traffic")
            if mode == "tiers":
                btc = feed.index[("binance", "BTCUSDT")]
                await wait_for(lambda: feed.tiers.tier[btc] == HOT, 10, "BTCUSDT hot")
                snap = feed.tiers.snapshot()
                assert snap["tier_counts"]["hot"] >= 1 and snap["rebalance"]["count"] >= 1
                assert sum(w["records"] for w in snap["workers"]) > 0
                assert feed.queues is not None and len(feed.queues) == len(SYMBOLS)
            elif mode == "pool":
                assert {w["tier"] for w in feed.tiers.snapshot()["workers"]} == {"warm"}
            else:
                assert feed.tiers is None and feed.writer is not None
            await quiesce_and_compare(feed, venue, "binance", SYMBOLS)
            assert feed.latency_hist().sum() > 0
        finally:
            stop.set()
            await task
            await venue.stop()

    asyncio.run(scenario())


def test_unknown_hot_book_is_a_config_error():
    async def scenario():
        venue = await BinanceSpotVenue(SYMBOLS).start()
        feed, stop, task = await _feed(venue, TierConfig(hot=("binance:NOPE",)))
        try:
            with pytest.raises(ConfigError, match="binance:NOPE"):
                await task
        finally:
            await venue.stop()

    asyncio.run(scenario())
