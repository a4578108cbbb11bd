"""dYdX v4 against the loopback indexer simulator: a lost message (message_id jump)
resyncs every book of the connection, a malformed update resyncs its book, garbage is
counted, a transient crossing is tolerated, a disconnect reconnects; every book ends
equal to the venue's truth.  Unbatched and batched subscriptions."""

import asyncio

from connectors.dydx import DyDx
from connectors.feed import ExchangeSpec
from simulator.dydx import DyDxVenue
from tests.connectors.loopback import all_live, quiesce_and_compare, start_feed, wait_for

SYMBOLS = ["BTC-USD", "ETH-USD", "SOL-USD"]


async def run_with(venue, scenario, **options) -> None:
    await venue.start()
    spec = ExchangeSpec(DyDx, SYMBOLS, ws_url=venue.ws_url + "/v4/ws",
                        rest_url=venue.rest_url, options=options)
    feed, stop, task = await start_feed(spec)
    try:
        # generous: the first run may compile the engine's kernels
        await wait_for(lambda: feed.store is not None and all_live(feed, "dydx", SYMBOLS), 60,
                       "books live")
        await scenario(feed, feed.stats["dydx"], feed.connections[0].protocol)
    except AssertionError:   # shown by pytest on failure only
        if feed.store is not None:
            print("statuses:", {s: feed.book("dydx", s).status for s in SYMBOLS})
            print("feed:", feed.summary(), feed.stats["dydx"])
        print("venue:", venue.events_sent, venue.counts, venue.faults)
        raise
    finally:
        stop.set()
        await task
        await venue.stop()


def test_dydx_recovers_from_every_fault():
    venue = DyDxVenue(SYMBOLS, rate=150, seed=11)
    btc, eth, sol = SYMBOLS

    async def scenario(feed, st, proto):
        assert venue.counts["subscribes"] == 3 and venue.counts["errors"] == 0
        await wait_for(lambda: venue.events_sent > 300, 10, "traffic")
        await asyncio.sleep(1.1)      # the venue allows 2 subscribes per book per second
        venue.drop_next(eth)                                      # a lost message
        await wait_for(lambda: proto.connection_gaps >= 1, 5, "gap detected")
        await wait_for(lambda: venue.counts["unsubscribes"] == 3, 5, "all resubscribed")
        await wait_for(lambda: all_live(feed, "dydx", SYMBOLS), 10, "live after the gap")
        assert [st.sym(s).gaps for s in SYMBOLS] == [1, 1, 1]     # one per book
        await asyncio.sleep(1.1)
        venue.malform_next(sol)                                   # a bad level
        await wait_for(lambda: st.sym(sol).malformed >= 1, 5, "bad level seen")
        await wait_for(lambda: all_live(feed, "dydx", SYMBOLS), 10, "resynced")
        await venue.send_garbage()                                # not JSON at all
        await wait_for(lambda: st.malformed_frames >= 1, 5, "garbage counted")
        await quiesce_and_compare(feed, venue, "dydx", SYMBOLS)   # flow now paused
        await venue.cross(btc)                                    # transient crossing
        await wait_for(lambda: feed.book("dydx", btc).status == "crossed"
                       and st.sym(btc).crossed == 1, 5, "crossed and counted")
        await asyncio.sleep(0.3)                                  # health checks run ...
        assert feed.book("dydx", btc).status == "crossed" and st.sym(btc).resyncs == 1
        await venue.uncross(btc)
        await wait_for(lambda: feed.book("dydx", btc).status == "live", 5, "uncrossed")
        venue.paused = False
        await venue.disconnect_all()                              # an outage
        await wait_for(lambda: st.connects >= 2, 10, "reconnect")
        await wait_for(lambda: all_live(feed, "dydx", SYMBOLS), 10, "live again")
        await wait_for(lambda: venue.events_sent > 600, 10, "more traffic")
        await quiesce_and_compare(feed, venue, "dydx", SYMBOLS)
        summary = feed.summary()["dydx"]
        assert [st.sym(s).gaps for s in SYMBOLS] == [1, 1, 1]
        assert proto.connection_gaps == 1    # the reconnect restarted ids at 0: no gap
        assert [st.sym(s).malformed for s in SYMBOLS] == [0, 0, 1]
        assert [st.sym(s).crossed for s in SYMBOLS] == [1, 0, 0]
        assert st.malformed_frames == 1 and st.disconnects >= 1
        # resyncs: every book after the gap, SOL after its bad level; none for crossing
        assert [st.sym(s).resyncs for s in SYMBOLS] == [1, 1, 2]
        assert summary["messages"] > 500 and venue.counts["errors"] == 0
        assert st.totals()["levels"] > 500

    asyncio.run(run_with(venue, scenario))


def test_dydx_batched_updates_and_a_gap():
    venue = DyDxVenue(SYMBOLS, rate=100, seed=3)

    async def scenario(feed, st, proto):
        await wait_for(lambda: venue.counts["batched_messages"] > 100, 10, "batched traffic")
        await asyncio.sleep(1.1)
        venue.drop_next(SYMBOLS[0])
        await wait_for(lambda: proto.connection_gaps >= 1, 5, "gap detected")
        await wait_for(lambda: all_live(feed, "dydx", SYMBOLS), 10, "live after the gap")
        await quiesce_and_compare(feed, venue, "dydx", SYMBOLS)
        assert [st.sym(s).gaps for s in SYMBOLS] == [1, 1, 1]
        assert st.malformed_frames == 0 and venue.counts["errors"] == 0
        assert sum(st.sym(s).malformed for s in SYMBOLS) == 0

    asyncio.run(run_with(venue, scenario, batched=True))
