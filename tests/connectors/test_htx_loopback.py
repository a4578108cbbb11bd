"""HTX against the loopback simulator (gzip frames, MBP 150 with seqNum/prevSeqNum, req
snapshots, server pings): a forced gap, a garbage frame, a decompression bomb and a
disconnect are each detected and counted, and every book ends equal to the venue's
truth.  First the documented sync rules, frame by frame."""

import asyncio
import gzip

import orjson

from connectors.base import Instrument
from connectors.feed import ExchangeSpec
from connectors.htx import HTX
from simulator.htx import HTXVenue, java_number
from tests.connectors.harness import ProtocolHarness
from tests.connectors.loopback import all_live, quiesce_and_compare, start_feed, wait_for

SYMBOLS = ["btcusdt", "ethusdt", "solusdt"]


class Harness(ProtocolHarness):
    """One HTX protocol, a store and a ring drained after every frame (like replay);
    frames are gzip-compressed as HTX sends them."""

    def __init__(self) -> None:
        inst = {"btcusdt": Instrument("htx", "btcusdt", "BTC-USDT", 3, 6)}
        super().__init__(HTX, ["btcusdt"], 3, 6, depth=150, instruments=inst,
                         options={"max_frame_bytes": 1 << 16})
        self.subscribed = [orjson.loads(m)
                           for m in self.proto.subscribe_messages(["btcusdt"])]

    def frame(self, obj, raw: bool = False) -> None:
        super().frame(obj if raw else gzip.compress(orjson.dumps(obj)))

    def outbox(self) -> list[dict]:
        return self.sent()


def upd(prev, seq, bids=(), asks=()):
    return {"ch": "market.btcusdt.mbp.150", "ts": 1,
            "tick": {"seqNum": seq, "prevSeqNum": prev, "bids": [list(x) for x in bids],
                     "asks": [list(x) for x in asks]}}


def rep(rid, seq, bids, asks):
    return {"id": rid, "rep": "market.btcusdt.mbp.150", "status": "ok",
            "data": {"seqNum": seq, "bids": [list(x) for x in bids],
                     "asks": [list(x) for x in asks]}}


def test_sync_rules_gap_and_bad_input():
    h = Harness()
    assert [list(m)[0] for m in h.subscribed] == ["sub", "req"]
    assert h.subscribed[1]["req"] == "market.btcusdt.mbp.150"
    h.frame({"id": h.subscribed[0]["id"], "status": "ok", "subbed": "market.btcusdt.mbp.150"})
    h.frame(upd(10, 12, [(100, 1)]))            # older than the snapshot: skipped
    h.frame(upd(12, 15, [(100.5, 2)]))          # prevSeqNum == snapshot seqNum: first
    h.frame(rep(h.subscribed[1]["id"], 12, [(100, 1)], [(101, 3)]))
    assert h.book()["status"] == "live" and h.book()["seq"] == 15
    assert h.book()["bids"] == [["100.5", "2"], ["100", "1"]]
    h.frame(upd(15, 16, asks=[(101, 0), (102, 4.5e-5)]))   # exponent text: 0.000045
    assert h.book()["asks"] == [["102", "0.000045"]]
    h.frame({"ping": 1234})
    assert h.outbox() == [{"pong": 1234}]
    h.frame(upd(17, 18, [(99, 1)]))             # 16 -> 17 missing: gap, req again
    assert h.stats.gaps == 1 and h.book()["status"] == "stale"
    (req,) = h.outbox()
    assert req["req"] == "market.btcusdt.mbp.150"
    h.frame(upd(18, 19, [(98, 1)]))             # buffered
    h.frame(rep(req["id"], 20, [(97, 1)], [(103, 1)]))   # newer than the buffer: wait
    h.frame(upd(20, 21, [(96, 1)]))
    assert h.book()["status"] == "live" and h.book()["bids"] == [["97", "1"], ["96", "1"]]
    # bad input: counted, never a crash
    h.frame(b"not gzip at all", raw=True)
    h.frame(gzip.compress(b"0" * (1 << 17)), raw=True)        # inflates past the cap
    h.frame(gzip.compress(b"[1,2]"), raw=True)
    h.frame({"status": "error", "err-code": "bad-request", "err-msg": "invalid topic"})
    assert h.proto.stats.malformed_frames == 4 and h.book()["status"] == "live"
    h.frame(upd(21, 22, [("1x", 1)]))          # unparsable price: that book resyncs
    assert h.stats.malformed == 1 and h.book()["status"] == "stale"
    h.frame({"ch": "market.btcusdt.mbp.150", "tick": {"seqNum": "x", "prevSeqNum": 1}})
    assert h.stats.malformed == 2
    h.frame(upd(1, 2, [(1, 1)]) | {"ch": "market.nopeusdt.mbp.150"})
    assert h.proto.stats.unknown_symbol_frames == 1
    assert h.stats.gaps == 1


def test_snapshot_older_than_buffer_is_requested_again():
    h = Harness()
    h.frame(upd(50, 51, [(100, 1)]))
    h.frame(rep(h.subscribed[1]["id"], 40, [(99, 1)], []))    # predates the stream
    assert h.stats.gaps == 0 and h.book()["status"] != "live"
    (req,) = h.outbox()
    h.frame(rep(req["id"], 50, [(99, 1)], [(101, 1)]))
    assert h.book()["status"] == "live" and h.book()["bids"] == [["100", "1"], ["99", "1"]]


def test_java_number_text():
    assert java_number(1, 4) == "1.0E-4" and java_number(999999, 10) == "9.99999E-5"
    assert java_number(12345, 2) == "123.45" and java_number(4 * 10**7, 0) == "4.0E7"


# -- against the simulated venue ------------------------------------------------------------
async def run(venue, scenario) -> None:
    await venue.start()
    spec = ExchangeSpec(HTX, SYMBOLS, ws_url=venue.ws_url + "/feed", rest_url=venue.rest_url)
    feed, stop, task = await start_feed(spec, depth=150)
    try:
        await wait_for(lambda: feed.store is not None and all_live(feed, "htx", SYMBOLS), 60,
                       "books live")
        await scenario(feed, feed.stats["htx"])
    except AssertionError:
        if feed.store is not None:
            print("statuses:", {s: feed.book("htx", s).status for s in SYMBOLS})
            print("feed:", feed.summary(), feed.stats["htx"])
        print("venue:", venue.events_sent, venue.counts, venue.faults)
        raise
    finally:
        stop.set()
        await task
        await venue.stop()


def test_htx_loopback_recovers_from_every_fault():
    venue = HTXVenue(SYMBOLS, rate=120, seed=3, ping_interval=0.3)
    btc, eth, sol = SYMBOLS

    async def scenario(feed, st):
        await wait_for(lambda: venue.events_sent > 300, 15, "traffic")
        reqs = venue.counts["reqs"]
        venue.drop_next(btc)                                    # a sequence gap
        await wait_for(lambda: st.sym(btc).gaps >= 1, 10, "gap detected")
        await wait_for(lambda: all_live(feed, "htx", SYMBOLS), 10, "re-requested")
        assert venue.counts["reqs"] > reqs and venue.counts["subs"] == len(SYMBOLS)
        await venue.send_garbage()                              # not JSON, not gzip
        await wait_for(lambda: st.malformed_frames >= 1, 5, "garbage counted")
        await venue.send_bomb()                                 # 9 MiB from ~9 KB
        await wait_for(lambda: st.malformed_frames >= 2, 5, "bomb counted")
        await wait_for(lambda: venue.counts["pongs"] >= 3, 5, "pongs")
        await venue.disconnect_all()                            # a disconnect
        await wait_for(lambda: st.connects >= 2, 10, "reconnect")
        await wait_for(lambda: all_live(feed, "htx", SYMBOLS), 15, "live again")
        await quiesce_and_compare(feed, venue, "htx", SYMBOLS, timeout=15)
        assert [st.sym(s).gaps for s in SYMBOLS] == [1, 0, 0]
        assert st.malformed_frames == 2 and st.disconnects >= 1
        assert all(st.sym(s).malformed == 0 for s in SYMBOLS)
        assert venue.counts["ping_timeouts"] == 0 and venue.counts["errors"] == 0
        assert st.totals()["levels"] > 300
        assert max(len(venue.truth(s)["bids"]) for s in SYMBOLS) > 20

    asyncio.run(run(venue, scenario))
