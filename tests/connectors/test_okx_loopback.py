"""OKX against the loopback simulator, in both bootstrap modes (websocket snapshot, and
the announced REST snapshot spliced by seqId): forced gap, corrupted checksum, malformed
frames, sequence reset, disconnect, idle keep-alives and ping/pong; every book ends equal
to the venue's truth.  First, the documented sequence rules driven frame by frame."""

import asyncio

import orjson
import pytest

from connectors.base import RestRequest
from connectors.feed import ExchangeSpec
from connectors.okx import OKX, OKXInstrument
from engine.constants import H_CHECKSUM_FAIL, H_CHECKSUM_OK
from simulator.okx import OKXVenue, okx_checksum
from tests.connectors.harness import ProtocolHarness
from tests.connectors.loopback import all_live, quiesce_and_compare, start_feed, wait_for

SYMBOLS = ["BTC-USDT", "ETH-USDT-SWAP", "BTC-USD-261225"]


# -- the protocol alone, frame by frame ---------------------------------------------------
class Harness(ProtocolHarness):
    """One OKX protocol, a store and a ring drained after every frame (like replay)."""

    def __init__(self, symbols=("BTC-USDT",)) -> None:
        inst = {s: OKXInstrument("okx", s, s, 3, 5, "0.1", "0.001") for s in symbols}
        super().__init__(OKX, symbols, 3, 5, depth=400, instruments=inst)

    def rest(self, request: RestRequest, entry: dict) -> None:
        body = orjson.dumps({"code": "0", "msg": "", "data": [entry]})
        self.proto.handle_rest(request, body, 0)
        self._drain()


def books(action, prev, seq, bids=(), asks=(), checksum=0, inst="BTC-USDT"):
    entry = {"asks": [[p, q, "0", "1"] for p, q in asks],
             "bids": [[p, q, "0", "1"] for p, q in bids],
             "ts": "1700000000000", "checksum": checksum, "prevSeqId": prev, "seqId": seq}
    return {"arg": {"channel": "books", "instId": inst}, "action": action, "data": [entry]}


def test_documented_sequence_example_then_a_gap():
    """OKX's example: snapshot (-1,10), update (10,15), idle (15,15), reset (15,3), (3,5)."""
    h = Harness()
    h.frame(books("snapshot", -1, 10, [("100", "1")], [("101", "2")]))
    h.frame(books("update", 10, 15, [("99.5", "3")]))
    h.frame(books("update", 15, 15))                     # keep-alive
    h.frame(books("update", 15, 3, asks=[("101", "0")]))  # maintenance reset
    h.frame(books("update", 3, 5, asks=[("102", "4")]))
    assert h.stats.gaps == 0 and h.book()["status"] == "live"
    assert h.book()["bids"] == [["100", "1"], ["99.5", "3"]]
    assert h.book()["asks"] == [["102", "4"]] and h.book()["seq"] == 5
    h.frame(books("update", 7, 9, [("100", "0")]))       # 5 -> 7 missing
    assert h.stats.gaps == 1 and h.book()["status"] == "stale"
    sent = [orjson.loads(m) for m in h.proto.outbox]
    assert [m["op"] for m in sent] == ["unsubscribe", "subscribe"]
    assert sent[1]["args"] == [{"channel": "books", "instId": "BTC-USDT"}]
    ignored = h.proto.stats.ignored_frames
    h.frame(books("update", 9, 11, [("98", "1")]))       # old subscription's tail: dropped
    assert h.proto.stats.ignored_frames == ignored + 1 and not h.proto.rest_requests
    h.frame({"event": "unsubscribe", "arg": {"channel": "books", "instId": "BTC-USDT"}})
    h.frame({"event": "subscribe", "arg": {"channel": "books", "instId": "BTC-USDT"}})
    h.frame(books("snapshot", -1, 20, [("97", "1")], [("103", "1")]))
    assert h.book()["status"] == "live" and h.book()["bids"] == [["97", "1"]]
    assert h.stats.gaps == 1 and h.stats.resyncs == 1 and h.stats.malformed == 0


def test_checksum_zero_is_skipped_nonzero_verified():
    h = Harness()
    h.frame(books("snapshot", -1, 1, [("100", "1")], [("101", "2.5")]))   # checksum 0
    assert h.store.hdr[H_CHECKSUM_OK] == 0 and h.book()["status"] == "live"
    good = okx_checksum([["100", "1.5"]], [["101", "2.5"]])
    h.frame(books("update", 1, 2, [("100", "1.5")], checksum=good))
    assert h.store.hdr[H_CHECKSUM_OK] == 1 and h.book()["status"] == "live"
    h.frame(books("update", 2, 3, [("100", "2")], checksum=good))  # wrong now
    assert h.store.hdr[H_CHECKSUM_FAIL] == 1 and h.stats.checksum_failures == 1
    assert h.stats.resyncs == 1 and h.book()["status"] == "stale"


def test_snapshot_with_bad_checksum_is_never_live():
    """The LIVE status follows the writer's verdict, not just the arrival of a snapshot."""
    h = Harness()
    bad = books("snapshot", -1, 1, [("100", "1")], [("101", "2")], checksum=12345)
    h.proto.handle_frame(orjson.dumps(bad).decode(), 0)
    h._drain()                                   # verified: mismatch, before any health check
    assert h.book()["status"] == "stale"
    h.proto.check_health()
    assert h.stats.checksum_failures == 1 and h.stats.resyncs == 1
    h.frame({"event": "subscribe", "arg": {"channel": "books", "instId": "BTC-USDT"}})
    good = okx_checksum([["100", "1"]], [["101", "2"]])
    h.proto.handle_frame(orjson.dumps(books("snapshot", -1, 2, [("100", "1")], [("101", "2")],
                                            checksum=good)).decode(), 0)
    h._drain()
    assert h.book()["status"] == "stale"         # verified, but not yet declared live
    h.proto.check_health()
    h._drain()
    assert h.book()["status"] == "live" and h.stats.checksum_failures == 1


def test_rest_bootstrap_splice_rules():
    """No websocket snapshot: buffer, fetch REST, refetch a snapshot older than the
    stream, splice one that falls inside an update, go live only once proven."""
    h = Harness()
    h.frame({"event": "subscribe", "arg": {"channel": "books", "instId": "BTC-USDT"}})
    h.frame(books("update", 98, 100, [("99", "9")]))     # already in the snapshot below
    h.frame(books("update", 100, 105, [("100", "5")]))
    h.frame(books("update", 105, 106, asks=[("101", "1")]))
    req = h.proto.rest_requests.popleft()
    assert "instId=BTC-USDT" in req.url and "sz=400" in req.url
    h.rest(req, {"asks": [], "bids": [["99", "1", "0", "1"]], "ts": "1", "seqId": 97})
    req = h.proto.rest_requests.popleft()                 # older than prevSeqId 98: again
    assert h.book()["status"] == "syncing" and not h.proto.rest_requests
    snap = {"asks": [["101", "7", "0", "1"], ["102", "1", "0", "1"]],
            "bids": [["100", "4", "0", "1"], ["99", "1", "0", "1"]], "ts": "1", "seqId": 103}
    h.rest(req, snap)   # 103 lies inside (100, 105]: that update re-applies, 106 follows
    h.proto.check_health()
    h._drain()
    assert h.book()["status"] == "live" and h.stats.gaps == 0
    assert h.book()["bids"] == [["100", "5"], ["99", "1"]]
    assert h.book()["asks"] == [["101", "1"], ["102", "1"]]
    h.frame(books("update", 104, 110, [("99", "0")]))     # gap: REST again, no resubscribe
    assert h.stats.gaps == 1 and not h.proto.outbox and h.proto.rest_requests
    assert h.proto.rest_mode


def test_pong_ignored_ping_after_silence_malformed_counted():
    h = Harness()
    h.proto.ping_idle = 0.0
    assert h.proto.ping_message() == "ping"
    h.frame("pong")
    assert h.proto.stats.ignored_frames == 1 and h.proto.stats.malformed_frames == 0
    h.frame('{"event":"error","code":"60012","msg":"Invalid request"}')
    h.frame("[1, 2]")
    assert h.proto.stats.malformed_frames == 2
    h.frame(books("snapshot", -1, 1, [("100", "1")], [("101", "1")]))
    h.frame(books("update", 1, 2, [("1x0", "1")]))              # unparsable price
    assert h.stats.malformed == 1 and h.book()["status"] == "stale"
    h.frame({"event": "subscribe", "arg": {"channel": "books", "instId": "BTC-USDT"}})
    h.frame(books("snapshot", -1, 5, [("100", "1")], [("101", "1")]))
    h.frame({"arg": {"channel": "books", "instId": "BTC-USDT"}, "action": "update",
             "data": [{"bids": None, "asks": [], "seqId": 6, "prevSeqId": 5}]})
    assert h.stats.malformed == 2 and h.proto.stats.malformed_frames == 2
    h.frame(books("update", 1, 2, inst="NOPE-USDT"))
    assert h.proto.stats.unknown_symbol_frames == 1


# -- against the simulated venue ------------------------------------------------------------
def spec_for(venue, **options) -> ExchangeSpec:
    return ExchangeSpec(OKX, SYMBOLS, ws_url=venue.ws_url + "/ws/v5/public",
                        rest_url=venue.rest_url, options=options)


async def run_with(venue, scenario, **options) -> None:
    await venue.start()
    feed, stop, task = await start_feed(spec_for(venue, **options))
    try:
        # generous: the first run may compile the engine's kernels
        await wait_for(lambda: feed.store is not None and all_live(feed, "okx", SYMBOLS), 60,
                       "books live")
        await scenario(feed, feed.stats["okx"])
    except AssertionError:   # shown by pytest on failure only
        if feed.store is not None:
            print("statuses:", {s: feed.book("okx", s).status for s in SYMBOLS})
            print("feed:", feed.summary(), feed.stats["okx"])
        print("venue:", venue.events_sent, venue.counts, venue.faults)
        raise
    finally:
        stop.set()
        await task
        await venue.stop()


def test_okx_ws_snapshot_mode_recovers_from_every_fault():
    venue = OKXVenue(SYMBOLS, rate=150, seed=5)
    btc, eth, fut = SYMBOLS

    async def scenario(feed, st):
        assert feed.connections[0].protocol.ws_snapshots
        await wait_for(lambda: venue.events_sent > 400, 10, "traffic")
        venue.drop_next(btc)                                     # a sequence gap
        await wait_for(lambda: st.sym(btc).gaps >= 1, 5, "gap detected")
        await wait_for(lambda: all_live(feed, "okx", SYMBOLS), 10, "resubscribed")
        assert venue.counts["unsubscribes"] == 1 and venue.counts["rest_books"] == 0
        venue.corrupt_next_checksum(eth)                         # a wrong checksum
        await wait_for(lambda: st.sym(eth).checksum_failures >= 1, 5, "mismatch seen")
        await wait_for(lambda: all_live(feed, "okx", SYMBOLS), 10, "resynced")
        venue.malform_next(fut)                                  # a bad level in a book
        await wait_for(lambda: st.sym(fut).malformed >= 1, 5, "bad level seen")
        await venue.send_garbage()                               # a frame that is no JSON
        await wait_for(lambda: st.malformed_frames >= 1, 5, "garbage counted")
        venue.reset_sequence(btc)                                # seqId < prevSeqId: fine
        await wait_for(lambda: venue.faults["resets"] == 1, 5, "reset sent")
        await wait_for(lambda: all_live(feed, "okx", SYMBOLS), 10, "live")
        await venue.disconnect_all()                             # a disconnect
        await wait_for(lambda: st.connects >= 2, 10, "reconnect")
        await wait_for(lambda: all_live(feed, "okx", SYMBOLS), 10, "live again")
        await quiesce_and_compare(feed, venue, "okx", SYMBOLS)
        summary = feed.summary()["okx"]
        assert [st.sym(s).gaps for s in SYMBOLS] == [1, 0, 0]
        assert [st.sym(s).checksum_failures for s in SYMBOLS] == [0, 1, 0]
        assert summary["checksum_failures"] == 1 and summary["messages"] > 400
        assert summary["checksums_verified"] + 1 == summary["messages"]  # each one checked
        assert [st.sym(s).malformed for s in SYMBOLS] == [0, 0, 1]
        assert st.malformed_frames == 1 and st.disconnects >= 1
        assert all(st.sym(s).resyncs >= 1 for s in SYMBOLS)
        assert st.totals()["levels"] > 300 and venue.counts["errors"] == 0

    asyncio.run(run_with(venue, scenario))


def test_okx_rest_bootstrap_mode_recovers_from_every_fault():
    """The announced protocol: no websocket snapshot; REST snapshots up to 6 level
    changes old, so they often fall inside an update or before the stream."""
    venue = OKXVenue(SYMBOLS, ws_snapshot=False, rest_lag=6, rate=150, seed=7)
    btc, eth, fut = SYMBOLS

    async def scenario(feed, st):
        proto = feed.connections[0].protocol
        assert proto.rest_mode and not proto.ws_snapshots
        assert venue.counts["snapshots"] == 0 and venue.counts["rest_books"] >= 3
        await wait_for(lambda: venue.events_sent > 400, 10, "traffic")
        fetched = venue.counts["rest_books"]
        venue.drop_next(btc)                                     # a gap: REST again
        await wait_for(lambda: st.sym(btc).gaps >= 1, 5, "gap detected")
        await wait_for(lambda: all_live(feed, "okx", SYMBOLS), 10, "re-bootstrapped")
        assert venue.counts["rest_books"] > fetched and venue.counts["unsubscribes"] == 0
        venue.corrupt_next_checksum(eth)
        await wait_for(lambda: st.sym(eth).checksum_failures >= 1, 5, "mismatch seen")
        await wait_for(lambda: all_live(feed, "okx", SYMBOLS), 10, "resynced")
        venue.malform_next(fut)
        await wait_for(lambda: st.sym(fut).malformed >= 1, 5, "bad level seen")
        await wait_for(lambda: all_live(feed, "okx", SYMBOLS), 10, "resynced")
        await venue.disconnect_all()
        await wait_for(lambda: st.connects >= 2, 10, "reconnect")
        await wait_for(lambda: all_live(feed, "okx", SYMBOLS), 10, "live again")
        await quiesce_and_compare(feed, venue, "okx", SYMBOLS)
        assert [st.sym(s).gaps for s in SYMBOLS] == [1, 0, 0]
        assert [st.sym(s).checksum_failures for s in SYMBOLS] == [0, 1, 0]
        assert [st.sym(s).malformed for s in SYMBOLS] == [0, 0, 1]
        assert venue.counts["unsubscribes"] == 0 and st.malformed_frames == 0
        summary = feed.summary()["okx"]
        assert summary["messages"] > 400 and summary["checksum_failures"] == 1
        rest_snapshots = sum(st.sym(s).snapshots for s in SYMBOLS)   # carry no checksum
        assert rest_snapshots == 3 * len(SYMBOLS)   # first, after each fault, reconnect
        assert summary["checksums_verified"] + 1 == summary["messages"] - rest_snapshots

    asyncio.run(run_with(venue, scenario))


def test_okx_checksums_off_keepalives_and_pings():
    """Production since 2026-06: checksum always 0 (nothing verified, nothing failed).
    Idle keep-alives (prevSeqId == seqId) keep books live; when the venue goes silent the
    client pings, the pongs keep the link up past the feed's 3 s idle timeout."""
    venue = OKXVenue(SYMBOLS, checksums=False, keepalive_after=0.3, rate=100, seed=9)

    async def scenario(feed, st):
        await wait_for(lambda: venue.events_sent > 100, 10, "traffic")
        venue.reset_sequence(SYMBOLS[0])
        await wait_for(lambda: venue.faults["resets"] == 1, 5, "reset sent")
        await quiesce_and_compare(feed, venue, "okx", SYMBOLS)
        await wait_for(lambda: venue.counts["keepalives"] >= 2 * len(SYMBOLS), 5, "idle")
        venue.keepalive_after = 1e9                         # now nothing at all
        await wait_for(lambda: venue.counts["pings"] >= 3, 5, "pings")
        await asyncio.sleep(3.5)
        await quiesce_and_compare(feed, venue, "okx", SYMBOLS)
        summary = feed.summary()["okx"]
        assert summary["checksums_verified"] == 0 and summary["checksum_failures"] == 0
        assert summary["gaps"] == 0 and summary["resyncs"] == 0
        assert st.disconnects == 0 and st.connects == 1 and st.malformed_frames == 0
        assert st.ignored_frames >= venue.counts["pings"] - 1   # pongs, acks

    asyncio.run(run_with(venue, scenario, ping_idle=0.4))


def test_unknown_symbol_is_a_startup_error():
    from connectors.base import ConfigError

    async def scenario():
        venue = await OKXVenue(SYMBOLS[:1]).start()
        spec = ExchangeSpec(OKX, ["BTC-USDT", "NOPE-USDT"], ws_url=venue.ws_url,
                            rest_url=venue.rest_url)
        feed, stop, task = await start_feed(spec)
        try:
            with pytest.raises(ConfigError, match="unknown symbol.*NOPE-USDT"):
                await task
        finally:
            await venue.stop()

    asyncio.run(scenario())
