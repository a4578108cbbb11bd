"""Bitget v2 against the loopback simulator: a corrupted checksum, a dropped update
(caught by the checksum: seq is not contiguous), a stale seq (the seq rule), a malformed
level, a frame that is no JSON and a disconnect, each detected and counted; every book
ends equal to the venue's truth.  First, the rules driven frame by frame."""

import asyncio

import orjson

from connectors.bitget import Bitget, BitgetInstrument
from connectors.feed import ExchangeSpec
from engine.constants import H_CHECKSUM_OK
from simulator.bitget import BitgetVenue, bitget_checksum
from tests.connectors.harness import ProtocolHarness
from tests.connectors.loopback import all_live, quiesce_and_compare, start_feed, wait_for

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT_UMCBL"]


class Harness(ProtocolHarness):
    def __init__(self) -> None:
        inst = {"BTCUSDT": BitgetInstrument("bitget", "BTCUSDT", "BTC-USDT", 2, 4,
                                            inst_type="SPOT", inst_id="BTCUSDT")}
        super().__init__(Bitget, ["BTCUSDT"], 2, 4, instruments=inst)


def books(action, seq, bids=(), asks=(), checksum=None, inst="BTCUSDT"):
    bids, asks = [list(x) for x in bids], [list(x) for x in asks]
    return {"action": action, "arg": {"instType": "SPOT", "channel": "books", "instId": inst},
            "data": [{"asks": asks, "bids": bids, "seq": seq, "ts": "1700000000000",
                      "checksum": checksum if checksum is not None else 0}]}


def test_seq_checksum_and_malformed_rules():
    h = Harness()
    snap_b, snap_a = [["100.00", "1.0000"]], [["101.00", "2.5000"]]
    h.frame(books("snapshot", 10, snap_b, snap_a, bitget_checksum(snap_b, snap_a)))
    assert h.book()["status"] == "live" and h.store.hdr[H_CHECKSUM_OK] == 1
    ck = bitget_checksum([["100.00", "1.0000"], ["99.50", "3.0000"]], snap_a)
    h.frame(books("update", 13, [("99.50", "3.0000")], checksum=ck))   # seq may skip
    assert h.book()["bids"] == [["100", "1"], ["99.5", "3"]] and h.stats.gaps == 0
    assert h.proto.venue_checksums_ok == 2 and h.store.hdr[H_CHECKSUM_OK] == 2
    h.frame(books("update", 13, [("99.50", "0")]))      # seq not increasing: a gap
    assert h.stats.gaps == 1 and h.book()["status"] == "stale"
    sent = [orjson.loads(m) for m in h.proto.outbox]
    assert [m["op"] for m in sent] == ["unsubscribe", "subscribe"]
    assert sent[1]["args"] == [{"instType": "SPOT", "channel": "books", "instId": "BTCUSDT"}]
    ignored = h.proto.stats.ignored_frames
    h.frame(books("update", 14, [("98.00", "1.0000")]))   # old subscription: dropped
    h.frame({"event": "subscribe", "arg": sent[1]["args"][0]})
    assert h.proto.stats.ignored_frames == ignored + 2
    h.frame(books("snapshot", 20, snap_b, snap_a, 12345))  # wrong checksum
    assert h.stats.checksum_failures == 1 and h.book()["status"] == "stale"
    h.frame(books("snapshot", 21, snap_b, snap_a, bitget_checksum(snap_b, snap_a)))
    assert h.book()["status"] == "live" and h.book()["asks"] == [["101", "2.5"]]
    h.frame(books("update", 22, [("1x0.00", "1.0000")]))   # unparsable price
    assert h.stats.malformed == 1 and h.book()["status"] == "stale"
    h.frame("pong")
    h.frame('{"event":"error","code":"30001","msg":"bad"}')
    h.frame("[1, 2]")
    h.frame(books("update", 1, inst="NOPEUSDT"))
    assert h.proto.stats.malformed_frames == 2 and h.proto.stats.unknown_symbol_frames == 1
    assert h.proto.ping_message() == "ping"


def test_bitget_recovers_from_every_fault():
    venue = BitgetVenue(SYMBOLS, rate=150, seed=3)
    btc, eth, sol = SYMBOLS

    async def scenario(feed, st):
        await wait_for(lambda: venue.events_sent > 300, 15, "traffic")
        venue.corrupt_next_checksum(eth)                     # a wrong checksum
        await wait_for(lambda: st.sym(eth).checksum_failures >= 1, 5, "mismatch seen")
        await wait_for(lambda: all_live(feed, "bitget", SYMBOLS), 10, "resynced")
        venue.drop_next(btc)                                 # a lost update
        await wait_for(lambda: st.sym(btc).checksum_failures >= 1, 5, "loss seen")
        await wait_for(lambda: all_live(feed, "bitget", SYMBOLS), 10, "resynced")
        venue.repeat_seq_next(sol)                           # seq not increasing
        await wait_for(lambda: st.sym(sol).gaps >= 1, 5, "gap seen")
        await wait_for(lambda: all_live(feed, "bitget", SYMBOLS), 10, "resynced")
        venue.malform_next(eth)                              # a bad level
        await wait_for(lambda: st.sym(eth).malformed >= 1, 5, "bad level seen")
        await venue.send_garbage()                           # no JSON at all
        await wait_for(lambda: st.malformed_frames >= 1, 5, "garbage counted")
        await wait_for(lambda: all_live(feed, "bitget", SYMBOLS), 10, "live")
        await venue.disconnect_all()                         # a disconnect
        await wait_for(lambda: st.connects >= 2, 10, "reconnect")
        await wait_for(lambda: all_live(feed, "bitget", SYMBOLS), 10, "live again")
        await quiesce_and_compare(feed, venue, "bitget", SYMBOLS)
        assert [st.sym(s).checksum_failures for s in SYMBOLS] == [1, 1, 0]
        assert [st.sym(s).gaps for s in SYMBOLS] == [0, 0, 1]
        assert [st.sym(s).malformed for s in SYMBOLS] == [0, 1, 0]
        assert st.malformed_frames == 1 and st.disconnects >= 1
        assert all(st.sym(s).resyncs >= 1 for s in SYMBOLS)
        assert venue.counts["unsubscribes"] == 4 and venue.counts["errors"] == 0
        summary = feed.summary()["bitget"]
        assert summary["checksum_failures"] == 0   # the writer never disagreed
        assert summary["messages"] > 300 and summary["checksums_verified"] > 300

    async def run():
        await venue.start()
        spec = ExchangeSpec(Bitget, SYMBOLS, ws_url=venue.ws_url + "/v2/ws/public",
                            rest_url=venue.rest_url)
        feed, stop, task = await start_feed(spec)
        try:
            await wait_for(lambda: feed.store is not None and all_live(feed, "bitget",
                                                                       SYMBOLS), 60, "live")
            await scenario(feed, feed.stats["bitget"])
        except AssertionError:
            if feed.store is not None:
                print("feed:", feed.summary(), feed.stats["bitget"])
            print("venue:", venue.events_sent, venue.counts, venue.faults)
            raise
        finally:
            stop.set()
            await task
            await venue.stop()

    asyncio.run(run())
