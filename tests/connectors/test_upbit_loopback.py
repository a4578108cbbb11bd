"""Upbit against the loopback simulator: instruments over REST, books from whole-book
messages in binary frames, a crossed message (the only integrity signal Upbit offers),
a malformed frame, a malformed book, a disconnect, PING keep-alives; every book ends
live and equal to the venue's top of book."""

import asyncio

from connectors.feed import ExchangeSpec
from connectors.upbit import Upbit
from simulator.upbit import UpbitVenue
from tests.connectors.loopback import all_live, quiesce_and_compare, start_feed, wait_for

SYMBOLS = ["KRW-BTC", "KRW-ETH", "BTC-XRP"]


def test_upbit_recovers_from_every_fault(monkeypatch):
    monkeypatch.setattr(Upbit, "ping_interval", 0.3)

    async def scenario():
        venue = await UpbitVenue(SYMBOLS, rate=100, seed=7).start()
        spec = ExchangeSpec(Upbit, SYMBOLS, ws_url=venue.ws_url + "/websocket/v1",
                            rest_url=venue.rest_url)
        feed, stop, task = await start_feed(spec)
        try:
            await wait_for(lambda: feed.store is not None and all_live(feed, "upbit",
                                                                       SYMBOLS), 20, "live")
            inst = spec.instruments["BTC-XRP"]
            assert (inst.unified, inst.price_decimals, inst.size_decimals) == \
                ("XRP-BTC", 8, 8)
            st = feed.stats["upbit"]
            await wait_for(lambda: venue.events_sent > 150, 10, "traffic")
            # the one visible fault; the flow pauses so that no later whole book repairs
            # it first: the recovery must come from the resubscribe's SNAPSHOT
            venue.paused = True
            await asyncio.sleep(0.1)                          # let the flow loop settle
            await venue.send_crossed("KRW-BTC")
            await wait_for(lambda: st.sym("KRW-BTC").crossed >= 1, 5, "crossed detected")
            await wait_for(lambda: venue.counts["requests"] >= 2, 5, "resubscribe")
            await wait_for(lambda: all_live(feed, "upbit", SYMBOLS), 10, "resynced")
            assert venue.counts["snapshots"] == 2 * len(SYMBOLS)   # every code, once more
            await quiesce_and_compare(feed, venue, "upbit", SYMBOLS)
            venue.paused = False
            await venue.send_garbage()                        # a malformed frame
            await wait_for(lambda: st.malformed_frames >= 1, 5, "malformed counted")
            await venue.send_bad_book("KRW-ETH")              # a malformed book
            await wait_for(lambda: st.sym("KRW-ETH").malformed >= 1, 5, "bad book counted")
            await wait_for(lambda: all_live(feed, "upbit", SYMBOLS), 10, "resynced again")
            await wait_for(lambda: feed.connections[0].protocol.status_frames >= 2, 5,
                           "PING answered")
            await venue.disconnect_all()                      # a disconnect
            await wait_for(lambda: st.connects >= 2, 10, "reconnect")
            await wait_for(lambda: all_live(feed, "upbit", SYMBOLS), 10, "live again")
            await quiesce_and_compare(feed, venue, "upbit", SYMBOLS)
            for s in SYMBOLS:                                 # a real book, top 15
                book = feed.book("upbit", s).to_dict()
                assert len(book["bids"]) == len(book["asks"]) == 15
            assert st.sym("KRW-BTC").crossed == 1 and st.sym("KRW-BTC").resyncs >= 1
            assert st.sym("KRW-ETH").malformed == 1 and st.sym("KRW-ETH").resyncs >= 1
            assert st.sym("BTC-XRP").resyncs == 0 and st.sym("BTC-XRP").crossed == 0
            assert st.totals()["gaps"] == 0                   # nothing to see one with
            assert st.malformed_frames == 1 and st.disconnects >= 1
            assert venue.counts["snapshots"] >= 3 * len(SYMBOLS)
            assert venue.counts["rejected"] == 0 and venue.counts["pings"] >= 2
        finally:
            stop.set()
            await task
            await venue.stop()

    asyncio.run(scenario())


def test_lost_messages_heal_with_the_next_one_and_pings_keep_a_quiet_link(monkeypatch):
    monkeypatch.setattr(Upbit, "ping_interval", 0.5)

    async def scenario():
        venue = await UpbitVenue(SYMBOLS[:2], rate=60, seed=3, units=30).start()
        spec = ExchangeSpec(Upbit, SYMBOLS[:2], ws_url=venue.ws_url,
                            rest_url=venue.rest_url)
        feed, stop, task = await start_feed(spec)
        try:
            await wait_for(lambda: feed.store is not None and all_live(feed, "upbit",
                                                                       SYMBOLS[:2]), 20)
            venue.drop_next("KRW-BTC", 5)                     # lost: the next one heals
            await wait_for(lambda: venue.faults["dropped"] == 5, 10, "drops")
            st = feed.stats["upbit"]
            seen = st.sym("KRW-BTC").snapshots
            await wait_for(lambda: st.sym("KRW-BTC").snapshots >= seen + 3, 10, "later books")
            await quiesce_and_compare(feed, venue, "upbit", SYMBOLS[:2])
            assert st.totals()["resyncs"] == 0 and st.disconnects == 0
            book = feed.book("upbit", "KRW-BTC").to_dict()
            assert len(book["bids"]) == 30
            await asyncio.sleep(4.0)       # no book traffic, past the 3 s idle timeout
            assert st.disconnects == 0 and all_live(feed, "upbit", SYMBOLS[:2])
            assert feed.connections[0].protocol.status_frames >= 6
        finally:
            stop.set()
            await task
            await venue.stop()

    asyncio.run(scenario())
